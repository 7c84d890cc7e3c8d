#include <doctest/doctest.h>

#include "test/ztunnel/support/snapshot_from_yaml.h"
#include "ztunnel/proxy/inbound_request.h"

using namespace ambient;
using namespace ambient::ztunnel;

namespace {

constexpr std::string_view kMesh = R"(
workloads:
- uid: c//Pod/ns/server
  name: server
  namespace: ns
  serviceAccount: server
  workloadIps: ["10.0.2.1"]
  protocol: HBONE
  services: {"ns/server.ns.svc.cluster.local": {80: 8080}}
- uid: c//Pod/ns/waypoint
  name: waypoint
  namespace: ns
  serviceAccount: waypoint
  workloadIps: ["10.0.9.9"]
  protocol: HBONE
- uid: c//Pod/ns/guarded
  name: guarded
  namespace: ns
  workloadIps: ["10.0.4.1"]
  protocol: HBONE
  waypoint: {destination: "/10.0.9.9", hboneMtlsPort: 15008}
- uid: c//Pod/ns/tunnelled
  name: tunnelled
  namespace: ns
  workloadIps: ["10.0.7.1"]
  protocol: HBONE
  applicationTunnel: {protocol: PROXY, port: 15088}
services:
- name: server
  namespace: ns
  hostname: server.ns.svc.cluster.local
  vips: ["/10.96.0.10"]
  ports: {80: 8080, 81: 8181}
)";

const std::uint16_t kOwnPorts[] = {15001, 15006, 15008, 15080};

InboundContext context() { return InboundContext{"", kOwnPorts}; }

state::IpAddr ip(const char* s) { return *state::IpAddr::parse(s); }

}  // namespace

TEST_SUITE("ztunnel/proxy/inbound_request") {
  TEST_CASE("authority parsing") {
    auto a = parse_authority("10.0.0.1:80");
    REQUIRE(a);
    CHECK(a->ip->to_string() == "10.0.0.1");
    CHECK(a->port == 80);
    auto b = parse_authority("[fd00::1]:443");
    REQUIRE(b);
    CHECK(b->ip->is_v6());
    auto c = parse_authority("reviews.ns.svc.cluster.local:9080");
    REQUIRE(c);
    CHECK(c->host == "reviews.ns.svc.cluster.local");
    for (const char* bad : {"", "10.0.0.1", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "fd00::1:80", "[fd00::1]80",
                            "[10.0.0.1]:80", "host name:80", ":80", "a/b:80", "10.0.0.1:8x"}) {
      CAPTURE(bad);
      CHECK_FALSE(parse_authority(bad));
    }
  }

  TEST_CASE("status table (reference 3.3)") {
    auto snap = test::snapshot_from_yaml(kMesh);
    struct Row {
      const char* name;
      const char* method;
      const char* authority;
      const char* conn_dst;
      int status;
      std::string upstream;
    };
    const std::vector<Row> rows = {
        {"CONNECT to the local pod", "CONNECT", "10.0.2.1:8080", "10.0.2.1", 200, "10.0.2.1:8080"},
        {"not CONNECT", "GET", "10.0.2.1:8080", "10.0.2.1", 400, ""},
        {"bad authority", "CONNECT", "10.0.2.1", "10.0.2.1", 400, ""},
        {"unknown local workload", "CONNECT", "10.0.3.3:80", "10.0.3.3", 503, ""},
        {"IP mismatch", "CONNECT", "10.0.2.2:8080", "10.0.2.1", 400, ""},
        {"the waypoint may receive the original destination", "CONNECT", "10.0.4.1:80", "10.0.9.9", 200, "10.0.9.9:80"},
        {"hostname authority uses the endpoint's target port", "CONNECT", "server.ns.svc.cluster.local:80", "10.0.2.1",
         200, "10.0.2.1:8080"},
        {"hostname authority falls back to Service.ports", "CONNECT", "server.ns.svc.cluster.local:81", "10.0.2.1", 200,
         "10.0.2.1:8181"},
        {"hostname authority with an unknown port", "CONNECT", "server.ns.svc.cluster.local:82", "10.0.2.1", 503, ""},
        {"hostname of a service without an endpoint here", "CONNECT", "other.ns.svc.cluster.local:80", "10.0.2.1", 503, ""},
        {"target is one of ztunnel's own ports", "CONNECT", "10.0.2.1:15008", "10.0.2.1", 503, ""},
        {"application tunnel overrides the port and allows any IP", "CONNECT", "10.96.0.1:80", "10.0.7.1", 200,
         "10.0.7.1:15088"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      auto r = build_inbound_request(*snap, row.method, row.authority, ip(row.conn_dst), context());
      INFO(r.reason);
      CHECK(r.status == row.status);
      if (row.status == 200) {
        CHECK(r.upstream.to_string() == row.upstream);
        CHECK(r.workload != nullptr);
      } else {
        CHECK_FALSE(r.reason.empty());
      }
    }
  }
}
