// L7State (attachment of routes and policies, destination resolution, the per-request decision) and
// EndpointPicker (load-balancing modes, exclusions, health), as tables over a real snapshot.
#include <doctest/doctest.h>

#include <map>

#include "test/ztunnel/support/snapshot_from_yaml.h"
#include "waypoint/proxy/endpoint_picker.h"
#include "waypoint/proxy/l7_state.h"

using namespace ambient;
using namespace ambient::waypoint;

namespace {

constexpr std::string_view kYaml = R"(
workloads:
- uid: k//Pod/demo/a1
  name: a1
  namespace: demo
  serviceAccount: app
  workloadIps: ["10.0.0.11"]
  protocol: HBONE
  services: {"demo/app.demo.svc.cluster.local": {80: 8080}, "demo/app-v2.demo.svc.cluster.local": {80: 8080}}
- uid: k//Pod/demo/a2
  name: a2
  namespace: demo
  serviceAccount: app
  workloadIps: ["10.0.0.12"]
  protocol: HBONE
  capacity: 3
  services: {"demo/app.demo.svc.cluster.local": {80: 9090}}
- uid: k//Pod/demo/a3
  name: a3
  namespace: demo
  serviceAccount: app
  workloadIps: ["10.0.0.13"]
  status: Unhealthy
  services: {"demo/app.demo.svc.cluster.local": {80: 8080}}
- uid: k//Pod/demo/plain
  name: plain
  namespace: demo
  workloadIps: ["10.0.0.20"]
services:
- name: app
  namespace: demo
  hostname: app.demo.svc.cluster.local
  vips: ["/10.96.0.1"]
  ports: {80: 8080, 81: 8081}
- name: app-v2
  namespace: demo
  hostname: app-v2.demo.svc.cluster.local
  vips: ["/10.96.0.2"]
  ports: {80: 8080}
- name: other
  namespace: demo
  hostname: other.demo.svc.cluster.local
  vips: ["/10.96.0.3"]
  ports: {80: 80}
)";

HttpRoute route(std::string name, std::optional<std::uint16_t> port) {
  HttpRoute r;
  r.ns = "demo";
  r.name = std::move(name);
  ParentRef p;
  p.name = "app";
  p.port = port;
  r.parents.push_back(p);
  RouteRule to_v2;
  RouteMatch m;
  m.headers.push_back({ValueMatchType::Exact, "x-version", "v2"});
  to_v2.matches.push_back(m);
  to_v2.backends.push_back({"app-v2", "", 80, 1});
  r.rules.push_back(to_v2);
  RouteRule redirect;
  RouteMatch rm;
  rm.path = PathMatch{PathMatchType::PathPrefix, "/old"};
  redirect.matches.push_back(rm);
  redirect.filters.redirect = RequestRedirect{};
  r.rules.push_back(redirect);
  RouteRule unknown;
  RouteMatch um;
  um.path = PathMatch{PathMatchType::Exact, "/ghost"};
  unknown.matches.push_back(um);
  unknown.backends.push_back({"nope", "", 80, 1});
  r.rules.push_back(unknown);
  RouteRule zero;
  RouteMatch zm;
  zm.path = PathMatch{PathMatchType::Exact, "/zero"};
  zero.matches.push_back(zm);
  zero.backends.push_back({"app-v2", "", 80, 0});
  r.rules.push_back(zero);
  return r;
}

AttachedPolicy deny_path(std::string name, std::string kind, std::string target, std::string path) {
  AttachedPolicy p;
  p.policy.ns = "demo";
  p.policy.name = std::move(name);
  p.policy.action = L7Policy::Action::Deny;
  L7Rule rule;
  Operation op;
  op.paths.push_back(*parse_pattern(path, "test"));
  rule.to.push_back(op);
  p.policy.rules.push_back(rule);
  p.targets.push_back({"", std::move(kind), std::move(target)});
  return p;
}

std::shared_ptr<const L7State> make_state(std::vector<HttpRoute> routes, std::vector<AttachedPolicy> policies = {}) {
  auto cfg = std::make_shared<WaypointConfig>();
  cfg->routes = std::move(routes);
  cfg->policies = std::move(policies);
  auto st = L7State::build(test::snapshot_from_yaml(kYaml), cfg, WaypointSelf{"demo", "waypoint", "waypoint", ""});
  REQUIRE_MESSAGE(st.has_value(), (st ? std::string() : st.error().message()));
  return *st;
}

struct Req {
  std::string method = "GET", path = "/";
  std::vector<std::pair<std::string, std::string>> headers;
};

RequestDecision decide(const L7State& st, std::string_view authority, const Req& q) {
  auto dst = st.resolve(authority);
  REQUIRE_MESSAGE(dst.has_value(), (dst ? std::string() : dst.error().message()));
  RequestView v;
  v.method = q.method;
  v.path = q.path;
  L7Request a;
  a.method = q.method;
  a.path = q.path;
  a.destination_port = dst->port;
  for (const auto& [n, val] : q.headers) {
    v.headers.emplace_back(n, val);
    a.headers.emplace_back(n, val);
  }
  return st.decide(*dst, v, a, 7);
}

}  // namespace

TEST_CASE("L7State resolves a CONNECT authority to a service port or a workload, and refuses the rest") {
  auto st = make_state({});
  auto svc = st->resolve("10.96.0.1:80");
  REQUIRE(svc);
  CHECK(svc->service->name() == "app");
  CHECK(svc->port == 80);
  auto w = st->resolve("10.0.0.11:8080");
  REQUIRE(w);
  CHECK(w->workload->name() == "a1");
  CHECK(w->service == nullptr);
  struct Bad {
    const char* authority;
    ErrorKind kind;
  };
  for (const Bad& b : {Bad{"10.96.0.1:82", ErrorKind::NotFound}, Bad{"10.9.9.9:80", ErrorKind::NotFound},
                       Bad{"app.demo:80", ErrorKind::InvalidArgument}, Bad{"10.96.0.1", ErrorKind::InvalidArgument},
                       Bad{"10.96.0.1:0", ErrorKind::InvalidArgument}, Bad{"[::1:80", ErrorKind::InvalidArgument}}) {
    CAPTURE(b.authority);
    auto r = st->resolve(b.authority);
    REQUIRE(!r);
    CHECK(r.error().kind == b.kind);
  }
}

TEST_CASE("L7State decides per request: routes by parentRef and port, policies by targetRef, defaults") {
  using K = RequestDecision::Kind;
  SUBCASE("no route attached: the original service") {
    auto st = make_state({});
    auto d = decide(*st, "10.96.0.1:80", {});
    CHECK(d.kind == K::Forward);
    CHECK(d.service->name() == "app");
    CHECK(d.port == 80);
    CHECK(d.rule == nullptr);
  }
  auto st = make_state({route("r", std::nullopt)},
                  {deny_path("svc-deny", "Service", "app", "/admin*"), deny_path("gw-deny", "Gateway", "waypoint", "/secret"),
                   deny_path("other-deny", "Service", "other", "/x"), deny_path("foreign-gw", "Gateway", "another", "/y")});
  struct Row {
    const char* name;
    std::string authority;
    Req req;
    K kind;
    std::string service;  // Forward
    std::string policy;   // Deny
  };
  const std::vector<Row> rows = {
      {"header match -> backendRef", "10.96.0.1:80", {"GET", "/p", {{"x-version", "v2"}}}, K::Forward, "app-v2", ""},
      {"no match -> original service", "10.96.0.1:80", {"GET", "/p", {}}, K::Forward, "app", ""},
      {"route on every port without a parentRef port", "10.96.0.1:81", {"GET", "/p", {{"x-version", "v2"}}}, K::Forward, "app-v2", ""},
      {"redirect rule", "10.96.0.1:80", {"GET", "/old/x", {}}, K::Redirect, "", ""},
      {"unknown backend service", "10.96.0.1:80", {"GET", "/ghost", {}}, K::NoBackend, "", ""},
      {"every weight 0", "10.96.0.1:80", {"GET", "/zero", {}}, K::NoBackend, "", ""},
      {"service-targeted DENY", "10.96.0.1:80", {"GET", "/admin/x", {{"x-version", "v2"}}}, K::Deny, "", "demo/svc-deny"},
      {"Gateway-targeted DENY applies to every service", "10.96.0.3:80", {"GET", "/secret", {}}, K::Deny, "", "demo/gw-deny"},
      {"a policy for another service does not apply", "10.96.0.1:80", {"GET", "/x", {}}, K::Forward, "app", ""},
      {"a policy for another gateway does not apply", "10.96.0.1:80", {"GET", "/y", {}}, K::Forward, "app", ""},
      {"direct workload traffic: Gateway policies only, no routes", "10.0.0.11:8080", {"GET", "/secret", {}}, K::Deny, "", "demo/gw-deny"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    auto d = decide(*st, row.authority, row.req);
    CHECK(d.kind == row.kind);
    if (row.kind == K::Forward) {
      REQUIRE(d.service != nullptr);
      CHECK(d.service->name() == row.service);
    }
    if (row.kind == K::Deny) CHECK(d.authz.policy == row.policy);
  }
  SUBCASE("a parentRef port limits the route to that service port") {
    auto narrow = make_state({route("r", 81)});
    CHECK(decide(*narrow, "10.96.0.1:80", {"GET", "/", {{"x-version", "v2"}}}).service->name() == "app");
    CHECK(decide(*narrow, "10.96.0.1:81", {"GET", "/", {{"x-version", "v2"}}}).service->name() == "app-v2");
  }
}

TEST_CASE("EndpointPicker: healthy candidates with their target ports, modes, exclusions") {
  auto snap = test::snapshot_from_yaml(kYaml);
  const state::Service* app = snap->service_by_host("demo", "app.demo.svc.cluster.local");
  REQUIRE(app != nullptr);
  SUBCASE("round robin visits each healthy endpoint in turn; the unhealthy one never") {
    EndpointPicker p(LoadBalancing::RoundRobin, 1);
    std::map<std::string, int> seen;
    for (int i = 0; i < 10; ++i) {
      auto t = p.pick(*snap, *app, 80, "");
      REQUIRE(t);
      seen[t->workload->name()]++;
      CHECK(t->hbone);
      CHECK(t->identity == "spiffe://cluster.local/ns/demo/sa/app");
      CHECK(t->authority() == (t->workload->name() == "a1" ? "10.0.0.11:8080" : "10.0.0.12:9090"));  // the endpoint's own port map
    }
    CHECK(seen["a1"] == 5);
    CHECK(seen["a2"] == 5);
    CHECK(seen.count("a3") == 0);
  }
  SUBCASE("random is weighted by capacity (3:1)") {
    EndpointPicker p(LoadBalancing::Random, 12345);
    int a2 = 0;
    for (int i = 0; i < 4000; ++i) a2 += p.pick(*snap, *app, 80, "")->workload->name() == "a2";
    CHECK(a2 > 2800);  // expected 3000, sd 27
    CHECK(a2 < 3200);
  }
  SUBCASE("least request prefers the endpoint with fewer active requests") {
    EndpointPicker p(LoadBalancing::LeastRequest, 99);
    for (int i = 0; i < 5; ++i) p.started("k//Pod/demo/a1");
    for (int i = 0; i < 50; ++i) CHECK(p.pick(*snap, *app, 80, "")->workload->name() == "a2");
    for (int i = 0; i < 5; ++i) p.finished("k//Pod/demo/a1");
    for (int i = 0; i < 7; ++i) p.started("k//Pod/demo/a2");  // 7 / capacity 3 > 0 / 1
    for (int i = 0; i < 50; ++i) CHECK(p.pick(*snap, *app, 80, "")->workload->name() == "a1");
  }
  SUBCASE("an excluded endpoint is skipped while another exists") {
    EndpointPicker p(LoadBalancing::RoundRobin, 1);
    const std::vector<std::string> tried = {"k//Pod/demo/a1"};
    for (int i = 0; i < 6; ++i) CHECK(p.pick(*snap, *app, 80, "", tried)->workload->name() == "a2");
    const std::vector<std::string> all = {"k//Pod/demo/a1", "k//Pod/demo/a2"};
    CHECK(p.pick(*snap, *app, 80, "", all).has_value());  // all tried: any again rather than none
  }
  SUBCASE("a port the service does not have gives no endpoint; a non-HBONE workload is plain TCP") {
    EndpointPicker p(LoadBalancing::RoundRobin, 1);
    CHECK(!p.pick(*snap, *app, 99, ""));
    auto plain = EndpointPicker::direct(*snap->workload_by_uid("k//Pod/demo/plain"), 7000);
    REQUIRE(plain);
    CHECK(!plain->hbone);
    CHECK(plain->authority() == "10.0.0.20:7000");
  }
}
