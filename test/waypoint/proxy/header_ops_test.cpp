// The pure helpers of the HTTP exchanges (waypoint/proxy/header_ops.h), as tables: Gateway API header modifier
// order, path rewrites (full and prefix, element-wise), redirect locations, Envoy's retry backoff bounds.
#include <doctest/doctest.h>

#include "waypoint/proxy/header_ops.h"

using namespace ambient;
using namespace ambient::waypoint;

TEST_CASE("header modifier: set replaces every copy, add appends, remove runs last") {
  h2::Headers hs = {{"a", "1"}, {"a", "2"}, {"b", "x"}, {"c", "y"}};
  HeaderModifier m;
  m.set = {{"a", "new"}};
  m.add = {{"b", "z"}, {"d", "w"}};
  m.remove = {"c", "d"};
  apply_modifier(m, hs);
  const h2::Headers want = {{"b", "x"}, {"a", "new"}, {"b", "z"}};
  REQUIRE(hs.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    CHECK(hs[i].name == want[i].name);
    CHECK(hs[i].value == want[i].value);
  }
}

TEST_CASE("rewrite_path: ReplaceFullPath and element-wise ReplacePrefixMatch") {
  struct Row {
    PathModifier::Type type;
    const char* value;
    const char* matched_prefix;  // the rule's PathPrefix
    const char* path;
    const char* want;
  };
  using T = PathModifier::Type;
  const Row rows[] = {
      {T::ReplaceFullPath, "/new", "/", "/old/x", "/new"},
      {T::ReplacePrefixMatch, "/v2", "/api", "/api/users", "/v2/users"},
      {T::ReplacePrefixMatch, "/v2", "/api/", "/api/users", "/v2/users"},
      {T::ReplacePrefixMatch, "/v2/", "/api", "/api/users", "/v2/users"},
      {T::ReplacePrefixMatch, "/v2", "/api", "/api", "/v2"},
      {T::ReplacePrefixMatch, "/", "/api", "/api/users", "/users"},
      {T::ReplacePrefixMatch, "/", "/api", "/api", "/"},
      {T::ReplacePrefixMatch, "/v2", "/", "/users", "/v2/users"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.path);
    CAPTURE(r.value);
    RouteMatch m;
    m.path = PathMatch{PathMatchType::PathPrefix, r.matched_prefix};
    CHECK(rewrite_path(PathModifier{r.type, r.value}, &m, r.path) == r.want);
  }
}

TEST_CASE("redirect_location: the filter's parts where set, the request's otherwise") {
  struct Row {
    const char* name;
    RequestRedirect r;
    const char* host;
    const char* want;
  };
  auto rr = [](std::optional<std::string> scheme, std::optional<std::string> host, std::optional<std::uint16_t> port) {
    RequestRedirect r;
    r.scheme = std::move(scheme);
    r.hostname = std::move(host);
    r.port = port;
    return r;
  };
  const Row rows[] = {
      {"nothing set: same host and port", rr({}, {}, {}), "web:8080", "http://web:8080/a/b?q=1"},
      {"scheme only: the request's port is dropped", rr("https", {}, {}), "web:8080", "https://web/a/b?q=1"},
      {"hostname", rr({}, "new.example", {}), "web:8080", "http://new.example/a/b?q=1"},
      {"default port for the scheme is left out", rr("https", "x", 443), "web", "https://x/a/b?q=1"},
      {"other port kept", rr("https", "x", 8443), "web", "https://x:8443/a/b?q=1"},
      {"IPv6 host keeps its brackets", rr({}, {}, {}), "[fd00::1]:80", "http://[fd00::1]:80/a/b?q=1"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    CHECK(redirect_location(row.r, nullptr, "/a/b", "q=1", row.host) == row.want);
  }
  RequestRedirect with_path;
  with_path.path = PathModifier{PathModifier::Type::ReplaceFullPath, "/moved"};
  CHECK(redirect_location(with_path, nullptr, "/a/b", "", "web") == "http://web/moved");
}

TEST_CASE("attempt_deadline: backendRequest from now, within the request deadline") {
  using namespace std::chrono_literals;
  const auto now = std::chrono::steady_clock::time_point{} + 1000s;
  RouteTimeouts none, per, both;
  per.backend_request = 100ms;
  both.backend_request = 100ms;
  both.request = 300ms;
  struct Row {
    const char* name;
    const RouteTimeouts* timeouts;
    std::optional<std::chrono::steady_clock::time_point> request, want;
  };
  const Row rows[] = {
      {"neither: unbounded", &none, std::nullopt, std::nullopt},
      {"request only", &none, now + 250ms, now + 250ms},
      {"backendRequest only", &per, std::nullopt, now + 100ms},
      {"backendRequest first", &both, now + 300ms, now + 100ms},
      {"request first (little left)", &both, now + 40ms, now + 40ms},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    CHECK(attempt_deadline(*row.timeouts, row.request, now) == row.want);
  }
}

TEST_CASE("retry_backoff: within [0, base * 2^(n-1)], capped at 10x base") {
  RetryPolicy p;
  p.backoff = std::chrono::milliseconds(25);
  for (std::uint64_t rnd : {0ull, 1ull, 12345ull, ~0ull}) {
    CHECK(retry_backoff(p, 1, rnd).count() <= 25);
    CHECK(retry_backoff(p, 2, rnd).count() <= 50);
    CHECK(retry_backoff(p, 5, rnd).count() <= 250);  // 400 capped at 250
    CHECK(retry_backoff(p, 40, rnd).count() <= 250);
  }
  CHECK(retry_backoff(p, 5, 250).count() == 250);  // the cap itself is reachable
  p.backoff = std::chrono::milliseconds(0);
  CHECK(retry_backoff(p, 3, 99).count() == 0);
}
