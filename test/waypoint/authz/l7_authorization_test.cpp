// Istio AuthorizationPolicy (L7) semantics at the waypoint, as tables.
#include <doctest/doctest.h>

#include "waypoint/authz/l7_authorization.h"

using namespace ambient;
using namespace ambient::waypoint;

namespace {

StringPattern pat(std::string_view s) { return *parse_pattern(s, "test"); }
IpBlock block(std::string_view s) { return *parse_ip_block(s, "test"); }

struct Req {
  std::string identity = "spiffe://cluster.local/ns/frontend/sa/web";  // "" = no identity
  std::string source_ip = "10.0.1.5";
  std::string method = "GET", path = "/", host = "reviews.demo.svc.cluster.local:9080";
  std::uint16_t port = 9080;
  std::vector<std::pair<std::string, std::string>> headers{};
};

L7Request view(const Req& r) {
  L7Request v;
  if (!r.identity.empty()) v.source = *rbac::Identity::parse(r.identity);
  v.source_ip = *rbac::IpAddress::parse(r.source_ip);
  v.destination_ip = *rbac::IpAddress::parse("10.0.2.7");
  v.destination_port = r.port;
  v.method = r.method;
  v.path = r.path;
  v.host = r.host;
  for (const auto& [k, val] : r.headers) v.headers.emplace_back(k, val);
  return v;
}

L7Policy policy(std::string name, L7Policy::Action action, std::vector<L7Rule> rules) {
  return L7Policy{"demo", std::move(name), action, std::move(rules)};
}

bool allowed(const std::vector<L7Policy>& policies, const Req& r) { return evaluate(policies, view(r)).allowed; }

}  // namespace

TEST_SUITE("waypoint/authz") {
  TEST_CASE("string patterns: exact, prefix*, *suffix, * (non-empty); bad forms refused") {
    CHECK(pat("/admin").matches("/admin"));
    CHECK_FALSE(pat("/admin").matches("/admin/x"));
    CHECK(pat("/api/*").matches("/api/v1"));
    CHECK(pat("*.html").matches("/index.html"));
    CHECK(pat("*").matches("x"));
    CHECK_FALSE(pat("*").matches(""));
    for (const char* bad : {"", "a*b", "**", "*a*"}) {
      CAPTURE(bad);
      CHECK_FALSE(parse_pattern(bad, "paths[0]"));
    }
    CHECK(parse_pattern("a*b", "rules[0].to[0].operation.paths[1]").error().context.find("rules[0].to[0].operation.paths[1]") == 0);
  }

  TEST_CASE("ip blocks: CIDR containment per family, v4-mapped as IPv4, host bits refused") {
    CHECK(block("10.0.0.0/8").contains(*rbac::IpAddress::parse("10.9.8.7")));
    CHECK_FALSE(block("10.0.0.0/8").contains(*rbac::IpAddress::parse("11.0.0.1")));
    CHECK(block("10.0.1.5").contains(*rbac::IpAddress::parse("::ffff:10.0.1.5")));
    CHECK_FALSE(block("10.0.0.0/8").contains(*rbac::IpAddress::parse("::1")));
    CHECK(block("2001:db8::/32").contains(*rbac::IpAddress::parse("2001:db8:1::1")));
    CHECK(block("0.0.0.0/0").contains(*rbac::IpAddress::parse("192.168.1.1")));
    CHECK_FALSE(parse_ip_block("10.0.0.1/8", "ipBlocks[0]"));  // host bits set
    CHECK_FALSE(parse_ip_block("10.0.0.0/33", "ipBlocks[0]"));
    CHECK_FALSE(parse_ip_block("ten/8", "ipBlocks[0]"));
  }

  TEST_CASE("decision: DENY first; then ALLOW policies allow only what they match; none allows all") {
    L7Rule admin;
    admin.to = {Operation{.paths = {pat("/admin*")}}};
    L7Rule frontend_reads;
    frontend_reads.from = {Source{.namespaces = {pat("frontend")}}};
    frontend_reads.to = {Operation{.methods = {pat("GET"), pat("HEAD")}}};
    const std::vector<L7Policy> policies{policy("deny-admin", L7Policy::Action::Deny, {admin}),
                                         policy("allow-frontend-reads", L7Policy::Action::Allow, {frontend_reads})};
    struct Row {
      Req req;
      bool allowed;
      const char* reason;
    };
    const Row rows[] = {
        {Req{}, true, "allow-frontend-reads"},
        {Req{.path = "/admin/users"}, false, "deny-admin"},
        {Req{.method = "POST"}, false, ""},
        {Req{.identity = "spiffe://cluster.local/ns/other/sa/x"}, false, ""},
        {Req{.identity = ""}, false, ""},
    };
    for (const auto& row : rows) {
      CAPTURE(row.req.path);
      CAPTURE(row.req.method);
      CAPTURE(row.req.identity);
      const auto d = evaluate(policies, view(row.req));
      CHECK(d.allowed == row.allowed);
      CHECK(d.policy == (std::string(row.reason).empty() ? "" : "demo/" + std::string(row.reason)));
    }
    CHECK(evaluate({}, view(Req{})).reason == rbac::Decision::Reason::NoPolicies);
    CHECK(allowed({policy("deny-admin", L7Policy::Action::Deny, {admin})}, Req{}));  // only DENY: the rest passes
  }

  TEST_CASE("empty policies and rules: ALLOW without rules denies all, DENY without rules denies nothing, {} matches all") {
    CHECK_FALSE(allowed({policy("allow-nothing", L7Policy::Action::Allow, {})}, Req{}));
    CHECK(allowed({policy("deny-nothing", L7Policy::Action::Deny, {})}, Req{}));
    CHECK(allowed({policy("allow-all", L7Policy::Action::Allow, {L7Rule{}})}, Req{}));
    CHECK_FALSE(allowed({policy("deny-all", L7Policy::Action::Deny, {L7Rule{}})}, Req{}));
  }

  TEST_CASE("sources: principals, namespaces, ipBlocks and their negations; no identity matches no positive entry") {
    auto allow_from = [](Source s) {
      L7Rule r;
      r.from = {std::move(s)};
      return std::vector<L7Policy>{policy("p", L7Policy::Action::Allow, {r})};
    };
    CHECK(allowed(allow_from(Source{.principals = {pat("cluster.local/ns/frontend/sa/web")}}), Req{}));
    CHECK_FALSE(allowed(allow_from(Source{.principals = {pat("cluster.local/ns/frontend/sa/web")}}), Req{.identity = ""}));
    CHECK(allowed(allow_from(Source{.principals = {pat("*")}}), Req{}));                       // "any authenticated"
    CHECK_FALSE(allowed(allow_from(Source{.principals = {pat("*")}}), Req{.identity = ""}));
    CHECK_FALSE(allowed(allow_from(Source{.not_principals = {pat("*/sa/web")}}), Req{}));
    CHECK(allowed(allow_from(Source{.not_namespaces = {pat("legacy")}}), Req{}));
    CHECK(allowed(allow_from(Source{.ip_blocks = {block("10.0.0.0/16")}}), Req{}));
    CHECK_FALSE(allowed(allow_from(Source{.ip_blocks = {block("10.0.0.0/16")}, .not_ip_blocks = {block("10.0.1.0/24")}}), Req{}));
    // Two sources: either one suffices.
    L7Rule either;
    either.from = {Source{.namespaces = {pat("nope")}}, Source{.namespaces = {pat("frontend")}}};
    CHECK(allowed({policy("p", L7Policy::Action::Allow, {either})}, Req{}));
  }

  TEST_CASE("operations: methods, paths (no query), hosts with or without port and any case, ports, negations") {
    auto allow_to = [](Operation o) {
      L7Rule r;
      r.to = {std::move(o)};
      return std::vector<L7Policy>{policy("p", L7Policy::Action::Allow, {r})};
    };
    CHECK(allowed(allow_to(Operation{.hosts = {pat("reviews.demo.svc.cluster.local")}}), Req{}));
    CHECK(allowed(allow_to(Operation{.hosts = {pat("REVIEWS.demo.svc.cluster.local:9080")}}), Req{}));
    CHECK(allowed(allow_to(Operation{.hosts = {pat("*.svc.cluster.local")}}), Req{}));
    CHECK_FALSE(allowed(allow_to(Operation{.hosts = {pat("ratings.demo.svc.cluster.local")}}), Req{}));
    CHECK(allowed(allow_to(Operation{.ports = {9080}}), Req{}));
    CHECK_FALSE(allowed(allow_to(Operation{.not_ports = {9080}}), Req{}));
    CHECK_FALSE(allowed(allow_to(Operation{.not_methods = {pat("GET")}}), Req{}));
    CHECK(allowed(allow_to(Operation{.paths = {pat("/api/*")}}), Req{.path = "/api/v1"}));
    CHECK_FALSE(allowed(allow_to(Operation{.paths = {pat("/api/*")}, .not_paths = {pat("*/internal")}}), Req{.path = "/api/internal"}));
  }

  TEST_CASE("when: request headers, source and destination facts; unsupported keys refused by name") {
    auto allow_when = [](std::string_view key, std::vector<std::string> values, std::vector<std::string> not_values) {
      auto c = parse_condition(key, values, not_values, "rules[0].when[0]");
      REQUIRE_MESSAGE(c, (c ? std::string() : c.error().message()));
      L7Rule r;
      r.when = {*c};
      return std::vector<L7Policy>{policy("p", L7Policy::Action::Allow, {r})};
    };
    const Req with_header{.headers = {{"x-user", "alice"}}};
    CHECK(allowed(allow_when("request.headers[X-User]", {"alice"}, {}), with_header));
    CHECK_FALSE(allowed(allow_when("request.headers[X-User]", {"bob"}, {}), with_header));
    CHECK_FALSE(allowed(allow_when("request.headers[X-User]", {"*"}, {}), Req{}));      // absent header
    CHECK(allowed(allow_when("request.headers[X-User]", {}, {"mallory"}), Req{}));       // absent: no notValue matches
    CHECK(allowed(allow_when("source.ip", {"10.0.0.0/16"}, {}), Req{}));
    CHECK(allowed(allow_when("remote.ip", {}, {"192.168.0.0/16"}), Req{}));
    CHECK(allowed(allow_when("source.namespace", {"frontend"}, {}), Req{}));
    CHECK(allowed(allow_when("source.principal", {"cluster.local/ns/frontend/*"}, {}), Req{}));
    CHECK(allowed(allow_when("destination.ip", {"10.0.2.0/24"}, {}), Req{}));
    CHECK(allowed(allow_when("destination.port", {"9080"}, {}), Req{}));
    CHECK_FALSE(allowed(allow_when("destination.port", {"8080"}, {}), Req{}));

    struct Bad {
      const char* key;
      std::vector<std::string> values;
      const char* mentions;
    };
    const Bad bad[] = {
        {"request.auth.claims[iss]", {"x"}, "request.auth.claims[iss]"},
        {"connection.sni", {"x"}, "connection.sni"},
        {"source.ip", {"not-an-ip"}, "not an IP address"},
        {"destination.port", {"99999"}, "not a port"},
        {"request.headers[x]", {}, "needs values or notValues"},
    };
    for (const auto& b : bad) {
      CAPTURE(b.key);
      auto c = parse_condition(b.key, b.values, {}, "rules[0].when[0]");
      REQUIRE_FALSE(c);
      CHECK(c.error().context.find(b.mentions) != std::string::npos);
    }
  }

  TEST_CASE("actions: ALLOW (default), DENY; CUSTOM and AUDIT refused with the reason") {
    CHECK(*parse_action("", "spec.action") == L7Policy::Action::Allow);
    CHECK(*parse_action("DENY", "spec.action") == L7Policy::Action::Deny);
    auto custom = parse_action("CUSTOM", "demo/ext: spec.action");
    REQUIRE_FALSE(custom);
    CHECK(custom.error().kind == ErrorKind::Unsupported);
    CHECK(custom.error().context.find("CUSTOM (ext_authz) is not supported") != std::string::npos);
    CHECK_FALSE(parse_action("AUDIT", "spec.action"));
    CHECK(parse_action("allow", "spec.action").error().kind == ErrorKind::InvalidArgument);
  }
}
