// Golden bytes for proto/discovery.proto (envoy.service.discovery.v3 Delta subset): requests
// ztunnel sends must match what istiod decodes byte for byte; istiod's responses must land where
// ztunnel reads them, including the Address / Authorization inside each Resource's Any.
#include <doctest/doctest.h>
#include <google/protobuf/descriptor.h>

#include <string>

#include "proto/authorization.pb.h"
#include "proto/discovery.pb.h"
#include "proto/workload.pb.h"
#include "test/proto/wire.h"

using wire::len;
using wire::num;

namespace {

constexpr const char* kAddressType = "type.googleapis.com/istio.workload.Address";
constexpr const char* kAuthzType = "type.googleapis.com/istio.security.Authorization";

}  // namespace

TEST_SUITE("proto/discovery") {
  TEST_CASE(
      "DeltaDiscoveryRequest, first on a stream: node = 1, type_url = 2, "
      "initial_resource_versions = 5") {
    envoy::service::discovery::v3::DeltaDiscoveryRequest req;
    req.mutable_node()->set_id("ztunnel~10.0.0.7~zt.istio-system~istio-system.svc.cluster.local");
    req.set_type_url(kAddressType);
    (*req.mutable_initial_resource_versions())["uid-1"] = "v7";

    const std::string expected =
        len(1, len(1, "ztunnel~10.0.0.7~zt.istio-system~istio-system.svc.cluster.local")) +
        len(2, kAddressType) +
        len(5, len(1, "uid-1") + len(2, "v7"));  // map entry{key = 1, value = 2}
    CHECK(wire::serialize(req) == expected);
  }

  TEST_CASE(
      "DeltaDiscoveryRequest, on-demand: resource_names_subscribe = 3, "
      "resource_names_unsubscribe = 4") {
    envoy::service::discovery::v3::DeltaDiscoveryRequest req;
    req.set_type_url(kAddressType);
    req.add_resource_names_subscribe("*");
    req.add_resource_names_subscribe("net1/10.0.0.9");
    req.add_resource_names_unsubscribe("*");
    CHECK(wire::serialize(req) ==
          len(2, kAddressType) + len(3, "*") + len(3, "net1/10.0.0.9") + len(4, "*"));
  }

  TEST_CASE("DeltaDiscoveryRequest ACK (response_nonce = 6) and NACK (error_detail = 7)") {
    envoy::service::discovery::v3::DeltaDiscoveryRequest ack;
    ack.set_type_url(kAuthzType);
    ack.set_response_nonce("nonce-1");
    CHECK(wire::serialize(ack) == len(2, kAuthzType) + len(6, "nonce-1"));

    envoy::service::discovery::v3::DeltaDiscoveryRequest nack = ack;
    nack.mutable_error_detail()->set_code(3);
    nack.mutable_error_detail()->set_message("ns1/bad: unknown scope");
    CHECK(wire::serialize(nack) == len(2, kAuthzType) + len(6, "nonce-1") +
                                       len(7, num(1, 3) + len(2, "ns1/bad: unknown scope")));
  }

  TEST_CASE("DeltaDiscoveryResponse and Resource: every field lands where istiod puts it") {
    // Any{type_url = 1, value = 2} holding Address{workload = 1: Workload{uid = 20}}
    const std::string workload_any = len(1, kAddressType) + len(2, len(1, len(20, "uid-1")));
    // Any holding Authorization{name = 1, namespace = 2}
    const std::string authz_any = len(1, kAuthzType) + len(2, len(1, "allow-a") + len(2, "ns1"));
    // Struct{fields = 1: entry{key = 1, value = 2: Value{string_value = 3}}}
    const std::string trace = len(1, len(1, "trace") + len(2, len(3, "abc")));
    const std::string resource =
        len(1, "v7") +                                    // version
        len(2, workload_any) +                            // resource
        len(3, "uid-1") +                                 // name
        len(4, "net1/10.0.1.5") +                         // aliases
        len(6, num(1, 30) + num(2, 500000000)) +          // ttl Duration{seconds = 1, nanos = 2}
        len(7, num(1, 1)) +                               // cache_control{do_not_cache = 1}
        len(9, len(1, len(1, "istio") + len(2, trace)));  // metadata{filter_metadata = 1}
    const std::string bytes = len(1, "2024-01-01T00:00:00Z/3") +  // system_version_info
                              len(2, resource) +
                              len(2, len(1, "v1") + len(2, authz_any) + len(3, "ns1/allow-a")) +
                              len(4, kAddressType) +                      // type_url
                              len(5, "nonce-9") +                         // nonce
                              len(6, "ns1/gone.ns1.svc.cluster.local") +  // removed_resources
                              len(7, len(1, "istiod-1"));  // control_plane{identifier = 1}

    envoy::service::discovery::v3::DeltaDiscoveryResponse resp;
    REQUIRE(resp.ParseFromString(bytes));
    CHECK(resp.GetReflection()->GetUnknownFields(resp).empty());
    CHECK(resp.system_version_info() == "2024-01-01T00:00:00Z/3");
    CHECK(resp.type_url() == kAddressType);
    CHECK(resp.nonce() == "nonce-9");
    REQUIRE(resp.removed_resources_size() == 1);
    CHECK(resp.removed_resources(0) == "ns1/gone.ns1.svc.cluster.local");
    CHECK(resp.control_plane().identifier() == "istiod-1");

    REQUIRE(resp.resources_size() == 2);
    const auto& r = resp.resources(0);
    CHECK(r.GetReflection()->GetUnknownFields(r).empty());
    CHECK(r.version() == "v7");
    CHECK(r.name() == "uid-1");
    REQUIRE(r.aliases_size() == 1);
    CHECK(r.aliases(0) == "net1/10.0.1.5");
    CHECK(r.ttl().seconds() == 30);
    CHECK(r.ttl().nanos() == 500000000);
    CHECK(r.cache_control().do_not_cache());
    CHECK(r.metadata().filter_metadata().at("istio").fields().at("trace").string_value() == "abc");

    // The Any type URL resolves to our message only if the package and message names are Istio's.
    istio::workload::Address addr;
    REQUIRE(r.resource().Is<istio::workload::Address>());
    REQUIRE(r.resource().UnpackTo(&addr));
    CHECK(addr.workload().uid() == "uid-1");

    istio::security::Authorization authz;
    REQUIRE(resp.resources(1).resource().Is<istio::security::Authorization>());
    REQUIRE(resp.resources(1).resource().UnpackTo(&authz));
    CHECK(authz.name() == "allow-a");
    CHECK(authz.namespace_() == "ns1");
  }

  TEST_CASE("gRPC method path") {
    const auto* svc = envoy::service::discovery::v3::DeltaDiscoveryRequest::descriptor()
                          ->file()
                          ->FindServiceByName("AggregatedDiscoveryService");
    REQUIRE(svc != nullptr);
    const auto* m = svc->FindMethodByName("DeltaAggregatedResources");
    REQUIRE(m != nullptr);
    CHECK("/" + svc->full_name() + "/" + m->name() ==
          "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources");
    CHECK(m->client_streaming());
    CHECK(m->server_streaming());
  }
}
