// Pod and Namespace objects from the API's JSON: the fields the agent decides on, and errors that name the
// object and the field.
#include "cni/agent/kube_objects.h"

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include <string>

using namespace ambient;
using namespace ambient::cni;

namespace {

Result<KubePod> pod(const char* text) { return kube_pod_from_json(boost::json::parse(text).as_object()); }

}  // namespace

TEST_SUITE("cni/agent/kube_objects") {
  TEST_CASE("a running pod as the API serves it") {
    auto p = pod(R"({"apiVersion":"v1","kind":"Pod",
      "metadata":{"name":"web-0","namespace":"shop","uid":"8dbc1f65-8b5e-4dd4-a0c1-8a2b4cd1e0f3","resourceVersion":"4711",
        "labels":{"app":"web","istio.io/dataplane-mode":"ambient"},
        "annotations":{"ambient.istio.io/redirection":"enabled"},
        "managedFields":[{"manager":"kubelet"}]},
      "spec":{"nodeName":"node-1","serviceAccountName":"web","containers":[{"name":"app","image":"nginx"}]},
      "status":{"phase":"Running","podIP":"10.244.1.7","podIPs":[{"ip":"10.244.1.7"},{"ip":"fd00:0::7"}]}})");
    REQUIRE_MESSAGE(p, (p ? "" : p.error().context));
    CHECK(p->key() == "shop/web-0");
    CHECK(p->uid == "8dbc1f65-8b5e-4dd4-a0c1-8a2b4cd1e0f3");
    CHECK(p->resource_version == "4711");
    CHECK(p->labels.at("istio.io/dataplane-mode") == "ambient");
    CHECK(p->annotations.at("ambient.istio.io/redirection") == "enabled");
    CHECK(p->service_account == "web");
    CHECK(p->node_name == "node-1");
    CHECK_FALSE(p->host_network);
    CHECK_FALSE(p->terminating);
    CHECK_FALSE(p->terminal());
    CHECK(p->ips == std::vector<std::string>{"10.244.1.7", "fd00::7"});
  }

  TEST_CASE("a pending pod without IPs, a terminating one, a finished one, a hostNetwork one") {
    auto pending = pod(R"({"metadata":{"name":"a","namespace":"n","uid":"u1"},"spec":{},"status":{"phase":"Pending"}})");
    REQUIRE(pending);
    CHECK(pending->ips.empty());
    auto old_api = pod(R"({"metadata":{"name":"a","namespace":"n","uid":"u1"},"status":{"podIP":"10.0.0.1"}})");
    REQUIRE(old_api);
    CHECK(old_api->ips == std::vector<std::string>{"10.0.0.1"});
    auto deleting = pod(R"({"metadata":{"name":"a","namespace":"n","uid":"u1","deletionTimestamp":"2026-12-06T10:00:00Z"}})");
    REQUIRE(deleting);
    CHECK(deleting->terminating);
    auto done = pod(R"({"metadata":{"name":"a","namespace":"n","uid":"u1"},"status":{"phase":"Succeeded"}})");
    REQUIRE(done);
    CHECK(done->terminal());
    auto host = pod(R"({"metadata":{"name":"a","namespace":"n","uid":"u1"},"spec":{"hostNetwork":true}})");
    REQUIRE(host);
    CHECK(host->host_network);
  }

  TEST_CASE("malformed pods are refused naming the pod and the field") {
    struct Row {
      const char* json;
      const char* error_part;
    };
    const Row rows[] = {
        {R"({"metadata":{"namespace":"n","uid":"u"}})", "pod n/(unnamed): metadata.name: missing"},
        {R"({"metadata":{"name":"a","namespace":"n"}})", "pod n/a: metadata.uid"},
        {R"({"metadata":{"name":"a","namespace":"n","uid":"u","labels":{"x":7}}})", "pod n/a: metadata.labels.x"},
        {R"({"metadata":{"name":"a","namespace":"n","uid":"u","labels":["x"]}})", "metadata.labels: expected an object"},
        {R"({"metadata":{"name":"a","namespace":"n","uid":"u"},"spec":{"hostNetwork":"yes"}})", "spec.hostNetwork"},
        {R"({"metadata":{"name":"a","namespace":"n","uid":"u"},"status":{"podIPs":[{"ip":"10.0.0.300"}]}})", "status.podIPs[0].ip"},
        {R"({"metadata":{"name":"a","namespace":"n","uid":"u"},"status":{"podIPs":{"ip":"10.0.0.3"}}})", "status.podIPs"},
        {R"({"metadata":"x"})", "metadata: expected an object"},
        {R"({})", "metadata"},
        {R"({"metadata":{"name":"a","namespace":"n","uid":""}})", "pod n/a: metadata.uid: empty"},
        {R"({"metadata":{"name":"","namespace":"n","uid":"u"}})", "pod n/(unnamed): metadata.name: empty"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.json);
      auto p = pod(row.json);
      REQUIRE_FALSE(p);
      CHECK_MESSAGE(p.error().context.find(row.error_part) != std::string::npos, p.error().context);
    }
    // Bounded: more labels than kept are refused, not stored.
    std::string many = R"({"metadata":{"name":"a","namespace":"n","uid":"u","labels":{)";
    for (std::size_t i = 0; i <= kMaxLabels; ++i) many += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\":\"v\"";
    many += "}}}";
    auto big = pod(many.c_str());
    REQUIRE_FALSE(big);
    CHECK(big.error().context.find("at most 512") != std::string::npos);
  }

  TEST_CASE("namespaces") {
    auto ns = kube_namespace_from_json(
        boost::json::parse(R"({"metadata":{"name":"shop","labels":{"istio.io/dataplane-mode":"ambient"}}})").as_object());
    REQUIRE(ns);
    CHECK(ns->name == "shop");
    CHECK(ns->labels.at("istio.io/dataplane-mode") == "ambient");
    auto bad = kube_namespace_from_json(boost::json::parse(R"({"metadata":{"labels":{}}})").as_object());
    REQUIRE_FALSE(bad);
    CHECK(bad.error().context.find("metadata.name") != std::string::npos);
    auto empty = kube_namespace_from_json(boost::json::parse(R"({"metadata":{"name":""}})").as_object());
    REQUIRE_FALSE(empty);
    CHECK(empty.error().context.find("metadata.name: empty") != std::string::npos);
  }
}
