#include <doctest/doctest.h>

#include <map>

#include "test/ztunnel/support/snapshot_from_yaml.h"
#include "ztunnel/proxy/outbound_request.h"

using namespace ambient;
using namespace ambient::ztunnel;

namespace {

// Two nodes' worth of workloads: a client, an HBONE server with two replicas behind a service (capacity
// 1 and 3), a TCP-only workload, a workload with its own waypoint, a service with a waypoint, a
// passthrough service, a service whose only endpoint is unhealthy, and the waypoint itself.
constexpr std::string_view kMesh = R"(
workloads:
- uid: c//Pod/ns/client
  name: client
  namespace: ns
  serviceAccount: client
  workloadIps: ["10.0.1.1"]
  protocol: HBONE
- uid: c//Pod/ns/server-a
  name: server-a
  namespace: ns
  serviceAccount: server
  workloadIps: ["10.0.2.1"]
  protocol: HBONE
  capacity: 1
  services: {"ns/server.ns.svc.cluster.local": {80: 8080}}
- uid: c//Pod/ns/server-b
  name: server-b
  namespace: ns
  serviceAccount: server
  workloadIps: ["10.0.2.2"]
  protocol: HBONE
  capacity: 3
  services: {"ns/server.ns.svc.cluster.local": {80: 9090}}
- uid: c//Pod/ns/legacy
  name: legacy
  namespace: ns
  serviceAccount: legacy
  workloadIps: ["10.0.3.1"]
  protocol: TCP
- uid: c//Pod/ns/guarded
  name: guarded
  namespace: ns
  serviceAccount: guarded
  workloadIps: ["10.0.4.1"]
  protocol: HBONE
  waypoint: {destination: "/10.0.9.9", hboneMtlsPort: 15008}
- uid: c//Pod/ns/waypoint
  name: waypoint
  namespace: ns
  serviceAccount: waypoint
  workloadIps: ["10.0.9.9"]
  protocol: HBONE
  services: {"ns/waypoint.ns.svc.cluster.local": {15008: 15008}}
- uid: c//Pod/ns/sick
  name: sick
  namespace: ns
  serviceAccount: sick
  workloadIps: ["10.0.5.1"]
  protocol: HBONE
  status: Unhealthy
  services: {"ns/sick.ns.svc.cluster.local": {80: 80}}
- uid: c//Pod/ns/behind-svc-waypoint
  name: behind
  namespace: ns
  serviceAccount: behind
  workloadIps: ["10.0.6.1"]
  protocol: HBONE
  services: {"ns/l7.ns.svc.cluster.local": {80: 8080}}
services:
- name: server
  namespace: ns
  hostname: server.ns.svc.cluster.local
  vips: ["/10.96.0.10"]
  ports: {80: 8080}
  subjectAltNames: ["spiffe://cluster.local/ns/ns/sa/extra"]
- name: sick
  namespace: ns
  hostname: sick.ns.svc.cluster.local
  vips: ["/10.96.0.11"]
  ports: {80: 80}
- name: external
  namespace: ns
  hostname: external.ns.svc.cluster.local
  vips: ["/10.96.0.12"]
  ports: {443: 443}
  loadBalancer: {mode: Passthrough}
- name: l7
  namespace: ns
  hostname: l7.ns.svc.cluster.local
  vips: ["/10.96.0.13"]
  ports: {80: 8080}
  waypoint: {destination: "ns/waypoint.ns.svc.cluster.local", hboneMtlsPort: 15008}
- name: waypoint
  namespace: ns
  hostname: waypoint.ns.svc.cluster.local
  vips: ["/10.96.0.99"]
  ports: {15008: 15008}
  subjectAltNames: ["spiffe://cluster.local/ns/ns/sa/waypoint-svc"]
)";

SocketAddr addr(const char* ip, std::uint16_t port) { return {*state::IpAddr::parse(ip), port}; }

const std::uint16_t kOwnPorts[] = {15001, 15006, 15008, 15080};

OutboundContext context(std::uint64_t fixed_random = 0) {
  OutboundContext ctx;
  ctx.network = "";
  ctx.own_ports = kOwnPorts;
  ctx.random = [fixed_random] { return fixed_random; };
  return ctx;
}

}  // namespace

TEST_SUITE("ztunnel/proxy/outbound_request") {
  TEST_CASE("decision table") {
    auto snap = test::snapshot_from_yaml(kMesh);
    const auto& client = *snap->workload_by_uid("c//Pod/ns/client");
    struct Row {
      const char* name;
      SocketAddr dst;
      std::uint64_t random;
      Protocol protocol;
      SocketAddr next_hop;
      std::string authority;
      std::vector<std::string> sans;
      bool passthrough;
    };
    const std::vector<Row> rows = {
        {"workload IP, HBONE", addr("10.0.2.1", 8080), 0, Protocol::Hbone, addr("10.0.2.1", 15008), "10.0.2.1:8080",
         {"spiffe://cluster.local/ns/ns/sa/server"}, false},
        {"workload IP, TCP endpoint", addr("10.0.3.1", 5432), 0, Protocol::Tcp, addr("10.0.3.1", 5432), "", {}, false},
        {"unknown destination: passthrough", addr("192.0.2.7", 443), 0, Protocol::Tcp, addr("192.0.2.7", 443), "", {}, true},
        {"service VIP, capacity-weighted pick lands on server-a (r=0 of 4)", addr("10.96.0.10", 80), 0, Protocol::Hbone,
         addr("10.0.2.1", 15008), "10.0.2.1:8080",
         {"spiffe://cluster.local/ns/ns/sa/server", "spiffe://cluster.local/ns/ns/sa/extra"}, false},
        {"service VIP, pick lands on server-b with its own port map (r=1 of 4)", addr("10.96.0.10", 80), 1, Protocol::Hbone,
         addr("10.0.2.2", 15008), "10.0.2.2:9090",
         {"spiffe://cluster.local/ns/ns/sa/server", "spiffe://cluster.local/ns/ns/sa/extra"}, false},
        {"service LB mode PASSTHROUGH", addr("10.96.0.12", 443), 0, Protocol::Tcp, addr("10.96.0.12", 443), "", {}, true},
        {"workload with a waypoint: HBONE to the waypoint, original authority", addr("10.0.4.1", 80), 0, Protocol::Hbone,
         addr("10.0.9.9", 15008), "10.0.4.1:80", {"spiffe://cluster.local/ns/ns/sa/waypoint"}, false},
        {"service with a hostname waypoint: waypoint endpoint + service SANs, VIP authority", addr("10.96.0.13", 80), 0,
         Protocol::Hbone, addr("10.0.9.9", 15008), "10.96.0.13:80",
         {"spiffe://cluster.local/ns/ns/sa/waypoint", "spiffe://cluster.local/ns/ns/sa/waypoint-svc"}, false},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      auto req = build_outbound_request(*snap, client, row.dst, context(row.random));
      REQUIRE_MESSAGE(req.has_value(), (req ? "" : req.error().message()));
      CHECK(req->protocol == row.protocol);
      CHECK(req->next_hop == row.next_hop);
      CHECK(req->authority == row.authority);
      CHECK(req->upstream_sans == row.sans);
      CHECK(req->passthrough == row.passthrough);
    }
  }

  TEST_CASE("capacity weights the endpoint choice 1:3") {
    auto snap = test::snapshot_from_yaml(kMesh);
    const auto& client = *snap->workload_by_uid("c//Pod/ns/client");
    std::map<std::string, int> hits;
    for (std::uint64_t r = 0; r < 400; ++r) {
      auto req = build_outbound_request(*snap, client, addr("10.96.0.10", 80), context(r));
      REQUIRE(req);
      ++hits[req->next_hop.to_string()];
    }
    CHECK(hits["10.0.2.1:15008"] == 100);
    CHECK(hits["10.0.2.2:15008"] == 300);
  }

  TEST_CASE("refusals") {
    auto snap = test::snapshot_from_yaml(kMesh);
    const auto& client = *snap->workload_by_uid("c//Pod/ns/client");
    auto self = build_outbound_request(*snap, client, addr("127.0.0.1", 15008), context());
    REQUIRE_FALSE(self);
    CHECK(self.error().kind == ErrorKind::PolicyDenied);
    auto self6 = build_outbound_request(*snap, client, addr("::1", 15001), context());
    CHECK_FALSE(self6);
    auto other_port = build_outbound_request(*snap, client, addr("127.0.0.1", 8080), context());
    REQUIRE(other_port);
    CHECK(other_port->passthrough);
    auto sick = build_outbound_request(*snap, client, addr("10.96.0.11", 80), context());
    REQUIRE_FALSE(sick);
    CHECK(sick.error().kind == ErrorKind::NotFound);
    CHECK(sick.error().context.find("no healthy upstream") != std::string::npos);
    auto unknown_port = build_outbound_request(*snap, client, addr("10.96.0.10", 81), context());
    CHECK_FALSE(unknown_port);
  }

  TEST_CASE("the waypoint itself is not sent back to its own waypoint") {
    auto snap = test::snapshot_from_yaml(kMesh);
    const auto& waypoint = *snap->workload_by_uid("c//Pod/ns/waypoint");
    auto req = build_outbound_request(*snap, waypoint, addr("10.0.4.1", 80), context());
    REQUIRE(req);
    CHECK(req->next_hop == addr("10.0.4.1", 15008));
    CHECK(req->authority == "10.0.4.1:80");
    auto svc = build_outbound_request(*snap, waypoint, addr("10.96.0.13", 80), context());
    REQUIRE(svc);
    CHECK(svc->next_hop == addr("10.0.6.1", 15008));
    CHECK(svc->authority == "10.0.6.1:8080");
  }
}
