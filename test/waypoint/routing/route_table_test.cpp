// Gateway API HTTPRoute matching and precedence, as tables: which rule a request selects across routes.
#include <doctest/doctest.h>

#include <map>

#include "waypoint/routing/route_table.h"

using namespace ambient;
using namespace ambient::waypoint;

namespace {

RouteMatch path(PathMatchType type, std::string value) {
  RouteMatch m;
  m.path = PathMatch{type, std::move(value)};
  return m;
}

// A route whose rule i sends to backend "r<i>" (port 80): the selected rule is told by its backend name.
HttpRoute route(std::string name, std::int64_t created, std::vector<std::vector<RouteMatch>> rules) {
  HttpRoute r{"demo", std::move(name), created, {}};
  for (std::size_t i = 0; i < rules.size(); ++i)
    r.rules.push_back(RouteRule{std::move(rules[i]), {BackendRef{r.name + "-r" + std::to_string(i), "", 80, 1}}});
  return r;
}

struct Req {
  Req(std::string m, std::string p, std::string q = "", std::vector<std::pair<std::string, std::string>> h = {})
      : method(std::move(m)), path(std::move(p)), query(std::move(q)), headers(std::move(h)) {}
  std::string method, path, query;
  std::vector<std::pair<std::string, std::string>> headers;
};

// The backend name of the selected rule, or "none".
std::string selected(const RouteTable& t, const Req& r) {
  RequestView v{r.method, r.path, r.query, {}};
  for (const auto& [k, val] : r.headers) v.headers.emplace_back(k, val);
  auto s = t.select(v);
  return s ? s->rule->backends.front().name : "none";
}

RouteTable table(std::vector<HttpRoute> routes) {
  auto t = RouteTable::build(std::move(routes));
  REQUIRE_MESSAGE(t.has_value(), (t ? std::string() : t.error().message()));
  return std::move(*t);
}

}  // namespace

TEST_SUITE("waypoint/routing") {
  TEST_CASE("path matches: exact, element-wise prefix, regular expression (whole path, no query)") {
    auto t = table({route("paths", 1,
                          {{path(PathMatchType::Exact, "/exact")},
                           {path(PathMatchType::PathPrefix, "/api/")},
                           {path(PathMatchType::RegularExpression, "/v[0-9]+/items")}})});
    struct Row {
      const char* path;
      const char* query;
      const char* want;
    };
    const Row rows[] = {
        {"/exact", "", "paths-r0"},      {"/exact/", "", "none"},          {"/exactly", "", "none"},
        {"/api", "", "paths-r1"},        {"/api/", "", "paths-r1"},        {"/api/users", "", "paths-r1"},
        {"/apis", "", "none"},           {"/v2/items", "", "paths-r2"},    {"/v2/items/1", "", "none"},
        {"/v2/items", "a=1", "paths-r2"}, {"/x/v2/items", "", "none"},     {"/", "", "none"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.path);
      CHECK(selected(t, Req{"GET", row.path, row.query, {}}) == row.want);
    }
  }

  TEST_CASE("no matches means PathPrefix \"/\"; a match without a path too") {
    RouteMatch get_only;
    get_only.method = "GET";
    auto t = table({route("default", 1, {{}, {get_only}})});
    CHECK(selected(t, Req{"POST", "/anything"}) == "default-r0");
    CHECK(selected(t, Req{"GET", "/anything"}) == "default-r1");  // the method match ranks higher
  }

  TEST_CASE("headers (names case-insensitive, first entry of a name counts), query parameters, method") {
    RouteMatch m;
    m.headers = {{ValueMatchType::Exact, "X-Version", "v2"}, {ValueMatchType::Exact, "x-version", "ignored"}};
    RouteMatch q;
    q.query_params = {{ValueMatchType::RegularExpression, "user", "[a-z]+"}};
    RouteMatch post;
    post.method = "POST";
    auto t = table({route("hdr", 1, {{m}, {q}, {post}})});
    CHECK(selected(t, Req{"GET", "/", "", {{"x-version", "v2"}}}) == "hdr-r0");
    CHECK(selected(t, Req{"GET", "/", "", {{"x-version", "v3"}}}) == "none");
    CHECK(selected(t, Req{"GET", "/", "user=alice&x=1"}) == "hdr-r1");
    CHECK(selected(t, Req{"GET", "/", "x=1&user=Alice"}) == "none");   // whole-value match
    CHECK(selected(t, Req{"GET", "/", "user=bob&user=1"}) == "hdr-r1"); // the first occurrence
    CHECK(selected(t, Req{"GET", "/", "users=bob"}) == "none");
    CHECK(selected(t, Req{"POST", "/"}) == "hdr-r2");
  }

  TEST_CASE("precedence across routes: exact > regex > longest prefix > method > headers > query > age > name") {
    RouteMatch with_method = path(PathMatchType::PathPrefix, "/a");
    with_method.method = "GET";
    RouteMatch one_header = path(PathMatchType::PathPrefix, "/a");
    one_header.headers = {{ValueMatchType::Exact, "h1", "1"}};
    RouteMatch two_headers = one_header;
    two_headers.headers.push_back({ValueMatchType::Exact, "h2", "2"});
    RouteMatch with_query = path(PathMatchType::PathPrefix, "/a");
    with_query.query_params = {{ValueMatchType::Exact, "q", "1"}};
    auto t = table({
        route("prefix-short", 5, {{path(PathMatchType::PathPrefix, "/")}}),
        route("prefix-a", 5, {{path(PathMatchType::PathPrefix, "/a")}}),
        route("prefix-ab", 5, {{path(PathMatchType::PathPrefix, "/a/b")}}),
        route("regex", 5, {{path(PathMatchType::RegularExpression, "/a/b/.*")}}),
        route("exact", 5, {{path(PathMatchType::Exact, "/a/b/c")}}),
        route("method", 5, {{with_method}}),
        route("headers", 5, {{one_header}, {two_headers}}),
        route("query", 5, {{with_query}}),
    });
    struct Row {
      Req req;
      const char* want;
    };
    const Row rows[] = {
        {{"GET", "/a/b/c"}, "exact-r0"},
        {{"GET", "/a/b/d"}, "regex-r0"},
        {{"GET", "/a/b"}, "prefix-ab-r0"},
        {{"GET", "/a/x"}, "method-r0"},                                  // same prefix: the method match wins
        {{"PUT", "/a/x", "", {{"h1", "1"}, {"h2", "2"}}}, "headers-r1"},  // more headers first
        {{"PUT", "/a/x", "", {{"h1", "1"}}}, "headers-r0"},
        {{"PUT", "/a/x", "q=1", {{"h1", "1"}}}, "headers-r0"},            // headers rank above query parameters
        {{"PUT", "/a/x", "q=1"}, "query-r0"},
        {{"PUT", "/a/x"}, "prefix-a-r0"},
        {{"PUT", "/z"}, "prefix-short-r0"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.req.path);
      CAPTURE(row.req.method);
      CHECK(selected(t, row.req) == row.want);
    }
  }

  TEST_CASE("ties: the older route, then namespace/name, then rule order") {
    const auto m = [] { return std::vector<RouteMatch>{path(PathMatchType::PathPrefix, "/same")}; };
    auto older = table({route("b-newer", 20, {m()}), route("c-older", 10, {m()})});
    CHECK(selected(older, Req{"GET", "/same"}) == "c-older-r0");
    auto by_name = table({route("zeta", 10, {m()}), route("alpha", 10, {m()})});
    CHECK(selected(by_name, Req{"GET", "/same"}) == "alpha-r0");
    auto by_rule = table({route("one", 10, {m(), m()})});
    CHECK(selected(by_rule, Req{"GET", "/same"}) == "one-r0");
  }

  TEST_CASE("bad routes are refused with the route, rule, match and field named") {
    struct Row {
      HttpRoute route;
      const char* mentions;
    };
    RouteMatch bad_header;
    bad_header.headers = {{ValueMatchType::Exact, "bad header", "x"}};
    RouteMatch bad_method;
    bad_method.method = "GE T";
    RouteMatch bad_query;
    bad_query.query_params = {{ValueMatchType::Exact, "", "x"}};
    HttpRoute no_port = route("np", 1, {{}});
    no_port.rules[0].backends[0].port = 0;
    std::vector<Row> rows;
    rows.push_back({route("r1", 1, {{path(PathMatchType::RegularExpression, "/(unclosed")}}), "demo/r1: rules[0].matches[0].path.value"});
    rows.push_back({route("r2", 1, {{path(PathMatchType::PathPrefix, "relative")}}), "must start with '/'"});
    rows.push_back({route("r3", 1, {{}, {bad_header}}), "demo/r3: rules[1].matches[0].headers[0].name"});
    rows.push_back({route("r4", 1, {{bad_method}}), "method: 'GE T'"});
    rows.push_back({route("r5", 1, {{bad_query}}), "queryParams[0].name"});
    rows.push_back({route("r6", 1, {{path(PathMatchType::RegularExpression, std::string(kMaxRegexLength + 1, 'a'))}}), "at most 1024"});
    rows.push_back({no_port, "demo/np: rules[0].backendRefs[0]: needs a name and a port"});
    for (auto& row : rows) {
      CAPTURE(row.mentions);
      auto t = RouteTable::build({row.route});
      REQUIRE_FALSE(t);
      CHECK(t.error().kind == ErrorKind::InvalidArgument);
      CHECK(t.error().context.find(row.mentions) != std::string::npos);
    }
  }

  TEST_CASE("a pathological regular expression is a non-match, never an exception") {
    auto t = table({route("evil", 1, {{path(PathMatchType::RegularExpression, "/(a+)+b")}})});
    CHECK(selected(t, Req{"GET", "/" + std::string(64, 'a')}) == "none");
  }

  TEST_CASE("weighted backends: proportional over a full cycle, weight 0 never, all zero none") {
    const std::vector<BackendRef> split{{"v1", "", 80, 90}, {"v2", "", 80, 10}, {"off", "", 80, 0}};
    std::map<std::size_t, int> hits;
    for (std::uint64_t r = 0; r < 1000; ++r) ++hits[*pick_backend(split, r)];
    CHECK(hits[0] == 900);
    CHECK(hits[1] == 100);
    CHECK(hits.count(2) == 0);
    CHECK_FALSE(pick_backend({{"a", "", 80, 0}}, 7).has_value());
    CHECK_FALSE(pick_backend({}, 7).has_value());
  }
}
