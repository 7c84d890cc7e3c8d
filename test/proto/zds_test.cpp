// Golden bytes for proto/zds.proto (istio.workload.zds): packets as istio-cni sends them must land
// in the fields ztunnel reads; what ztunnel sends must match istio-cni's bytes exactly.
#include <doctest/doctest.h>

#include <string>

#include "proto/zds.pb.h"
#include "test/proto/wire.h"

using wire::len;
using wire::num;

TEST_SUITE("proto/zds") {
  TEST_CASE("ZdsHello{V1} (ztunnel -> CNI)") {
    istio::workload::zds::ZdsHello hello;
    hello.set_version(istio::workload::zds::V1);
    CHECK(wire::serialize(hello) == num(1, 1));  // version = 1, V1 = 1
    CHECK(istio::workload::zds::NOT_USED == 0);
  }

  TEST_CASE("WorkloadRequest add = 1: AddWorkload{uid = 1, workload_info = 2}") {
    // WorkloadInfo{name = 1, namespace = 2, service_account = 3}
    const std::string info = len(1, "pod-a") + len(2, "ns1") + len(3, "sa-a");
    istio::workload::zds::WorkloadRequest req;
    REQUIRE(req.ParseFromString(len(1, len(1, "uid-a") + len(2, info))));
    CHECK(req.GetReflection()->GetUnknownFields(req).empty());
    REQUIRE(req.payload_case() == istio::workload::zds::WorkloadRequest::kAdd);
    CHECK(req.add().uid() == "uid-a");
    REQUIRE(req.add().has_workload_info());
    CHECK(req.add().workload_info().name() == "pod-a");
    CHECK(req.add().workload_info().namespace_() == "ns1");
    CHECK(req.add().workload_info().service_account() == "sa-a");
  }

  TEST_CASE("AddWorkload without workload_info is detectable") {
    istio::workload::zds::WorkloadRequest req;
    REQUIRE(req.ParseFromString(len(1, len(1, "uid-a"))));
    CHECK(req.has_add());
    CHECK_FALSE(req.add().has_workload_info());
  }

  TEST_CASE("WorkloadInfo field 4 (old trust_domain) is not a known field") {
    istio::workload::zds::WorkloadInfo info;
    REQUIRE(info.ParseFromString(len(1, "pod-a") + len(4, "td.example")));
    CHECK(info.name() == "pod-a");
    CHECK(info.GetReflection()->GetUnknownFields(info).field_count() == 1);
  }

  TEST_CASE("WorkloadRequest keep = 5: KeepWorkload{uid = 1}") {
    istio::workload::zds::WorkloadRequest req;
    REQUIRE(req.ParseFromString(len(5, len(1, "uid-k"))));
    REQUIRE(req.payload_case() == istio::workload::zds::WorkloadRequest::kKeep);
    CHECK(req.keep().uid() == "uid-k");
  }

  TEST_CASE("WorkloadRequest del = 2: DelWorkload{uid = 2}") {
    istio::workload::zds::WorkloadRequest req;
    REQUIRE(req.ParseFromString(len(2, len(2, "uid-d"))));
    REQUIRE(req.payload_case() == istio::workload::zds::WorkloadRequest::kDel);
    CHECK(req.del().uid() == "uid-d");
    CHECK(req.GetReflection()->GetUnknownFields(req.del()).empty());
  }

  TEST_CASE("WorkloadRequest snapshot_sent = 3: empty SnapshotSent") {
    istio::workload::zds::WorkloadRequest req;
    REQUIRE(req.ParseFromString(len(3, "")));
    CHECK(req.payload_case() == istio::workload::zds::WorkloadRequest::kSnapshotSent);
  }

  TEST_CASE("WorkloadResponse ack = 1: Ack{error = 1} (ztunnel -> CNI)") {
    istio::workload::zds::WorkloadResponse ack;
    ack.mutable_ack();
    CHECK(wire::serialize(ack) == len(1, ""));  // ACK: empty Ack, still present in the oneof

    istio::workload::zds::WorkloadResponse nack;
    nack.mutable_ack()->set_error("failure to start proxy");
    CHECK(wire::serialize(nack) == len(1, len(1, "failure to start proxy")));

    istio::workload::zds::WorkloadResponse parsed;
    REQUIRE(parsed.ParseFromString(len(1, len(1, "x"))));
    CHECK(parsed.ack().error() == "x");
  }
}
