// Golden bytes for proto/core.proto (envoy.config.core.v3 subset): the Node ztunnel sends and the
// Metadata / ControlPlane it may receive, at Envoy's field numbers.
#include <doctest/doctest.h>

#include <string>

#include "proto/core.pb.h"
#include "test/proto/wire.h"

using wire::len;

TEST_SUITE("proto/core") {
  TEST_CASE(
      "Node{id = 1, cluster = 2, metadata = 3, locality = 4, user_agent_name = 6, "
      "user_agent_version = 7, client_features = 10}") {
    envoy::config::core::v3::Node node;
    node.set_id("ztunnel~10.0.0.7~ztunnel-abc.istio-system~istio-system.svc.cluster.local");
    node.set_cluster("Kubernetes");
    (*node.mutable_metadata()->mutable_fields())["NODE_NAME"].set_string_value("node-1");
    node.mutable_locality()->set_region("r1");
    node.mutable_locality()->set_zone("z1");
    node.mutable_locality()->set_sub_zone("s1");
    node.set_user_agent_name("ztunnel");
    node.set_user_agent_version("0.1.0");
    node.add_client_features("envoy.lb.does_not_support_overprovisioning");

    // Struct{fields = 1: entry{key = 1, value = 2: Value{string_value = 3}}}
    const std::string metadata = len(1, len(1, "NODE_NAME") + len(2, len(3, "node-1")));
    const std::string expected =
        len(1, "ztunnel~10.0.0.7~ztunnel-abc.istio-system~istio-system.svc.cluster.local") +
        len(2, "Kubernetes") + len(3, metadata) +
        len(4, len(1, "r1") + len(2, "z1") + len(3, "s1")) +  // Locality{region, zone, sub_zone}
        len(6, "ztunnel") + len(7, "0.1.0") + len(10, "envoy.lb.does_not_support_overprovisioning");
    CHECK(wire::serialize(node) == expected);
  }

  TEST_CASE(
      "Metadata{filter_metadata = 1, typed_filter_metadata = 2}, ControlPlane{identifier = 1}") {
    envoy::config::core::v3::Metadata md;
    const std::string bytes =
        len(1, len(1, "istio") + len(2, len(1, len(1, "k") + len(2, len(3, "v"))))) +
        len(2, len(1, "typed") + len(2, len(1, "type.googleapis.com/google.protobuf.Empty")));
    REQUIRE(md.ParseFromString(bytes));
    REQUIRE(md.filter_metadata().count("istio") == 1);
    CHECK(md.filter_metadata().at("istio").fields().at("k").string_value() == "v");
    REQUIRE(md.typed_filter_metadata().count("typed") == 1);
    CHECK(md.typed_filter_metadata().at("typed").type_url() ==
          "type.googleapis.com/google.protobuf.Empty");

    envoy::config::core::v3::ControlPlane cp;
    REQUIRE(cp.ParseFromString(len(1, "istiod-7d9c")));
    CHECK(cp.identifier() == "istiod-7d9c");
  }
}
