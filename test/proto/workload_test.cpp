// Golden bytes for proto/workload.proto (istio.workload): bytes as istiod sends them, assembled
// from Istio's field numbers written out here, must land in the fields ztunnel reads.
#include <doctest/doctest.h>

#include <string>

#include "proto/workload.pb.h"
#include "test/proto/wire.h"

using wire::len;
using wire::num;
using wire::varint;

namespace {

const std::string kPodIp("\x0a\x00\x01\x05", 4);  // 10.0.1.5
// fd00::105
const std::string kPodIp6("\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x05", 16);
const std::string kWaypointIp("\x0a\x00\x02\x09", 4);  // 10.0.2.9
const std::string kVip("\x0a\x60\x00\x0a", 4);         // 10.96.0.10
const std::string kVipRange("\x0a\xc8\x00\x00", 4);    // 10.200.0.0

// GatewayAddress{address: NetworkAddress{"net1", 10.0.2.9}, hbone_mtls_port: 15008}
const std::string kGatewayByIp = len(2, len(1, "net1") + len(2, kWaypointIp)) + num(3, 15008);
// GatewayAddress{hostname: NamespacedHostname{"ns1", "wp.ns1..."}, hbone_mtls_port: 15008}
const std::string kGatewayByHost =
    len(1, len(1, "ns1") + len(2, "wp.ns1.svc.cluster.local")) + num(3, 15008);

std::string workload_bytes() {
  // Port{service_port: 80, target_port: 8080, app_protocol: HTTP11}
  const std::string port = num(1, 80) + num(2, 8080) + num(3, 1);
  return len(20, "cluster1//Pod/ns1/pod-a") +               // uid
         len(1, "pod-a") +                                  // name
         len(2, "ns1") +                                    // namespace
         len(3, kPodIp) + len(3, kPodIp6) +                 // addresses
         len(21, "pod-a.headless.ns1.svc.cluster.local") +  // hostname
         len(4, "net1") +                                   // network
         num(5, 1) +                                        // tunnel_protocol HBONE
         len(6, "td.example") +                             // trust_domain
         len(7, "sa-a") +                                   // service_account
         len(8, kGatewayByIp) +                             // waypoint
         len(19, kGatewayByHost) +                          // network_gateway
         len(9, "node-1") +                                 // node
         len(10, "app-a") +                                 // canonical_name
         len(11, "v2") +                                    // canonical_revision
         num(12, 2) +                                       // workload_type POD
         len(13, "deploy-a") +                              // workload_name
         num(14, 1) +                                       // native_tunnel
         len(23, num(1, 1) + num(2, 15088)) +               // application_tunnel{PROXY, port}
         // services: map entry{key = 1, value = 2: PortList{ports = 1}}
         len(22, len(1, "ns1/svc-a.ns1.svc.cluster.local") + len(2, len(1, port))) +
         len(16, "ns1/allow-a") + len(16, "ns1/deny-b") +  // authorization_policies
         num(17, 1) +                                       // status UNHEALTHY
         len(18, "cluster1") +                              // cluster_id
         len(24, len(1, "region-1") + len(2, "zone-a") + len(3, "sub-1")) +  // locality
         num(25, 1) +                                       // network_mode HOST_NETWORK
         // extensions: Extension{name = 1, config = 2: Any{type_url = 1}}
         len(26, len(1, "ext-a") + len(2, len(1, "type.googleapis.com/google.protobuf.Empty"))) +
         len(27, num(1, 3));                                // capacity UInt32Value{value = 1}
}

std::string service_bytes() {
  return len(1, "svc-a") +                                          // name
         len(2, "ns1") +                                            // namespace
         len(3, "svc-a.ns1.svc.cluster.local") +                    // hostname
         len(4, len(1, "net1") + len(2, kVip)) +                    // addresses[0]
         len(4, len(1, "net1") + len(2, kVipRange) + num(3, 16)) +  // addresses[1]: 10.200.0.0/16
         len(5, num(1, 80) + num(2, 8080) + num(3, 3)) +            // ports[0] GRPC
         len(5, num(1, 443) + num(3, 5)) +                // ports[1]: named target port (0), TLS
         len(6, "spiffe://td.example/ns/ns1/sa/svc-a") +  // subject_alt_names
         len(7, kGatewayByHost) +                         // waypoint
         // load_balancing{routing_preference: packed [NETWORK, REGION, ZONE], FAILOVER, ALLOW_ALL,
         // FIRST_HEALTHY_RACE}
         len(8, len(1, varint(6) + varint(1) + varint(2)) + num(2, 2) + num(3, 1) + num(4, 1)) +
         num(9, 3) +                                   // ip_families DUAL
         len(10, len(1, "ext-s")) +                    // extensions
         num(11, 1) +                                  // canonical
         num(12, 1) +                                  // ingress_use_waypoint
         len(13, len(1, kGatewayByIp) + num(2, 90)) +  // weighted_waypoints[0]
         num(14, 1);                                   // visibility NAMESPACE
}

}  // namespace

TEST_SUITE("proto/workload") {
  TEST_CASE("Address oneof: workload = 1, service = 2") {
    istio::workload::Address a;
    REQUIRE(a.ParseFromString(len(1, len(20, "uid-1"))));
    CHECK(a.type_case() == istio::workload::Address::kWorkload);
    CHECK(a.workload().uid() == "uid-1");

    REQUIRE(a.ParseFromString(len(2, len(3, "svc.ns.svc.cluster.local"))));
    CHECK(a.type_case() == istio::workload::Address::kService);
    CHECK(a.service().hostname() == "svc.ns.svc.cluster.local");

    // The xDS type URL names the message by its full name.
    CHECK(istio::workload::Address::descriptor()->full_name() == "istio.workload.Address");
  }

  TEST_CASE("Workload: every field lands where istiod puts it") {
    istio::workload::Address a;
    REQUIRE(a.ParseFromString(len(1, workload_bytes())));
    REQUIRE(a.has_workload());
    const auto& w = a.workload();
    CHECK(w.GetReflection()->GetUnknownFields(w).empty());

    CHECK(w.uid() == "cluster1//Pod/ns1/pod-a");
    CHECK(w.name() == "pod-a");
    CHECK(w.namespace_() == "ns1");
    REQUIRE(w.addresses_size() == 2);
    CHECK(w.addresses(0) == kPodIp);
    CHECK(w.addresses(1) == kPodIp6);
    CHECK(w.hostname() == "pod-a.headless.ns1.svc.cluster.local");
    CHECK(w.network() == "net1");
    CHECK(w.tunnel_protocol() == istio::workload::HBONE);
    CHECK(w.trust_domain() == "td.example");
    CHECK(w.service_account() == "sa-a");

    REQUIRE(w.has_waypoint());
    CHECK(w.waypoint().destination_case() == istio::workload::GatewayAddress::kAddress);
    CHECK(w.waypoint().address().network() == "net1");
    CHECK(w.waypoint().address().address() == kWaypointIp);
    CHECK_FALSE(w.waypoint().address().has_length());
    CHECK(w.waypoint().hbone_mtls_port() == 15008);

    REQUIRE(w.has_network_gateway());
    CHECK(w.network_gateway().destination_case() == istio::workload::GatewayAddress::kHostname);
    CHECK(w.network_gateway().hostname().namespace_() == "ns1");
    CHECK(w.network_gateway().hostname().hostname() == "wp.ns1.svc.cluster.local");
    CHECK(w.network_gateway().hbone_mtls_port() == 15008);

    CHECK(w.node() == "node-1");
    CHECK(w.canonical_name() == "app-a");
    CHECK(w.canonical_revision() == "v2");
    CHECK(w.workload_type() == istio::workload::POD);
    CHECK(w.workload_name() == "deploy-a");
    CHECK(w.native_tunnel());
    CHECK(w.application_tunnel().protocol() == istio::workload::ApplicationTunnel::PROXY);
    CHECK(w.application_tunnel().port() == 15088);

    REQUIRE(w.services_size() == 1);
    const auto it = w.services().find("ns1/svc-a.ns1.svc.cluster.local");
    REQUIRE(it != w.services().end());
    REQUIRE(it->second.ports_size() == 1);
    CHECK(it->second.ports(0).service_port() == 80);
    CHECK(it->second.ports(0).target_port() == 8080);
    CHECK(it->second.ports(0).app_protocol() == istio::workload::HTTP11);

    REQUIRE(w.authorization_policies_size() == 2);
    CHECK(w.authorization_policies(0) == "ns1/allow-a");
    CHECK(w.authorization_policies(1) == "ns1/deny-b");
    CHECK(w.status() == istio::workload::UNHEALTHY);
    CHECK(w.cluster_id() == "cluster1");
    CHECK(w.locality().region() == "region-1");
    CHECK(w.locality().zone() == "zone-a");
    CHECK(w.locality().subzone() == "sub-1");
    CHECK(w.network_mode() == istio::workload::HOST_NETWORK);
    REQUIRE(w.extensions_size() == 1);
    CHECK(w.extensions(0).name() == "ext-a");
    CHECK(w.extensions(0).config().type_url() == "type.googleapis.com/google.protobuf.Empty");
    REQUIRE(w.has_capacity());
    CHECK(w.capacity().value() == 3);
  }

  TEST_CASE("Workload: capacity unset is distinguishable from 0") {
    istio::workload::Workload w;
    REQUIRE(w.ParseFromString(len(20, "uid-1")));
    CHECK_FALSE(w.has_capacity());
    REQUIRE(w.ParseFromString(len(20, "uid-1") + len(27, "")));
    CHECK(w.has_capacity());
    CHECK(w.capacity().value() == 0);
  }

  TEST_CASE("Workload: field 15 (old virtual_ips) is not a known field") {
    istio::workload::Workload w;
    REQUIRE(w.ParseFromString(len(15, len(1, "10.0.0.1"))));
    CHECK(w.GetReflection()->GetUnknownFields(w).field_count() == 1);
  }

  TEST_CASE("Service: every field lands where istiod puts it") {
    istio::workload::Address a;
    REQUIRE(a.ParseFromString(len(2, service_bytes())));
    REQUIRE(a.has_service());
    const auto& s = a.service();
    CHECK(s.GetReflection()->GetUnknownFields(s).empty());

    CHECK(s.name() == "svc-a");
    CHECK(s.namespace_() == "ns1");
    CHECK(s.hostname() == "svc-a.ns1.svc.cluster.local");
    REQUIRE(s.addresses_size() == 2);
    CHECK(s.addresses(0).network() == "net1");
    CHECK(s.addresses(0).address() == kVip);
    CHECK_FALSE(s.addresses(0).has_length());
    CHECK(s.addresses(1).address() == kVipRange);
    REQUIRE(s.addresses(1).has_length());
    CHECK(s.addresses(1).length() == 16);

    REQUIRE(s.ports_size() == 2);
    CHECK(s.ports(0).service_port() == 80);
    CHECK(s.ports(0).target_port() == 8080);
    CHECK(s.ports(0).app_protocol() == istio::workload::GRPC);
    CHECK(s.ports(1).service_port() == 443);
    CHECK(s.ports(1).target_port() == 0);
    CHECK(s.ports(1).app_protocol() == istio::workload::TLS);

    REQUIRE(s.subject_alt_names_size() == 1);
    CHECK(s.subject_alt_names(0) == "spiffe://td.example/ns/ns1/sa/svc-a");
    CHECK(s.waypoint().hostname().hostname() == "wp.ns1.svc.cluster.local");
    CHECK(s.waypoint().hbone_mtls_port() == 15008);

    const auto& lb = s.load_balancing();
    REQUIRE(lb.routing_preference_size() == 3);
    CHECK(lb.routing_preference(0) == istio::workload::LoadBalancing::NETWORK);
    CHECK(lb.routing_preference(1) == istio::workload::LoadBalancing::REGION);
    CHECK(lb.routing_preference(2) == istio::workload::LoadBalancing::ZONE);
    CHECK(lb.mode() == istio::workload::LoadBalancing::FAILOVER);
    CHECK(lb.health_policy() == istio::workload::LoadBalancing::ALLOW_ALL);
    CHECK(lb.dns_connect_strategy() == istio::workload::LoadBalancing::FIRST_HEALTHY_RACE);

    CHECK(s.ip_families() == istio::workload::DUAL);
    REQUIRE(s.extensions_size() == 1);
    CHECK(s.extensions(0).name() == "ext-s");
    CHECK(s.canonical());
    CHECK(s.ingress_use_waypoint());
    REQUIRE(s.weighted_waypoints_size() == 1);
    CHECK(s.weighted_waypoints(0).destination().address().address() == kWaypointIp);
    CHECK(s.weighted_waypoints(0).weight() == 90);
    CHECK(s.visibility() == istio::workload::Service::NAMESPACE);
  }

  TEST_CASE("LoadBalancing: routing_preference also decodes unpacked") {
    istio::workload::LoadBalancing lb;
    REQUIRE(lb.ParseFromString(num(1, 4) + num(1, 5) + num(2, 1)));
    REQUIRE(lb.routing_preference_size() == 2);
    CHECK(lb.routing_preference(0) == istio::workload::LoadBalancing::NODE);
    CHECK(lb.routing_preference(1) == istio::workload::LoadBalancing::CLUSTER);
    CHECK(lb.mode() == istio::workload::LoadBalancing::STRICT);
  }

  TEST_CASE("NetworkAddress: explicit length 0 is present") {
    istio::workload::NetworkAddress n;
    REQUIRE(n.ParseFromString(len(2, kVip) + num(3, 0)));
    CHECK(n.has_length());
    CHECK(n.length() == 0);
  }

  TEST_CASE("enum values are Istio's") {
    using namespace istio::workload;
    CHECK(NONE == 0);
    CHECK(HBONE == 1);
    CHECK(LEGACY_ISTIO_MTLS == 2);
    CHECK(HEALTHY == 0);
    CHECK(UNHEALTHY == 1);
    CHECK(DEPLOYMENT == 0);
    CHECK(CRONJOB == 1);
    CHECK(POD == 2);
    CHECK(JOB == 3);
    CHECK(STANDARD == 0);
    CHECK(HOST_NETWORK == 1);
    CHECK(AUTOMATIC == 0);
    CHECK(IPV4_ONLY == 1);
    CHECK(IPV6_ONLY == 2);
    CHECK(DUAL == 3);
    CHECK(UNKNOWN == 0);
    CHECK(HTTP11 == 1);
    CHECK(HTTP2 == 2);
    CHECK(GRPC == 3);
    CHECK(TCP == 4);
    CHECK(TLS == 5);
    CHECK(ApplicationTunnel::NONE == 0);
    CHECK(ApplicationTunnel::PROXY == 1);
    CHECK(Service::PUBLIC == 0);
    CHECK(Service::NAMESPACE == 1);
    CHECK(LoadBalancing::UNSPECIFIED_SCOPE == 0);
    CHECK(LoadBalancing::REGION == 1);
    CHECK(LoadBalancing::ZONE == 2);
    CHECK(LoadBalancing::SUBZONE == 3);
    CHECK(LoadBalancing::NODE == 4);
    CHECK(LoadBalancing::CLUSTER == 5);
    CHECK(LoadBalancing::NETWORK == 6);
    CHECK(LoadBalancing::UNSPECIFIED_MODE == 0);
    CHECK(LoadBalancing::STRICT == 1);
    CHECK(LoadBalancing::FAILOVER == 2);
    CHECK(LoadBalancing::PASSTHROUGH == 3);
    CHECK(LoadBalancing::ONLY_HEALTHY == 0);
    CHECK(LoadBalancing::ALLOW_ALL == 1);
    CHECK(LoadBalancing::DEFAULT == 0);
    CHECK(LoadBalancing::FIRST_HEALTHY_RACE == 1);
  }
}
