#include <doctest/doctest.h>

#include <string>

#include <yaml-cpp/yaml.h>

#include "common/state/config_dump.h"
#include "common/state/ip_addr.h"
#include "common/state/local_config.h"
#include "test/support/paths.h"

using namespace ambient;
using namespace ambient::state;

namespace {

const char* kConfig = R"(
workloads:
- uid: Kubernetes//Pod/ns1/a
  name: a
  namespace: ns1
  serviceAccount: sa1
  workloadIps: ["10.0.0.5", "fd00::5"]
  protocol: HBONE
  network: net1
  node: node-a
  waypoint: {destination: "net1/10.0.0.100", hboneMtlsPort: 15008}
  networkGateway: {destination: "istio-system/eastwest.example"}
  applicationTunnel: {protocol: PROXY, port: 15088}
  authorizationPolicies: [ns1/sel]
  workloadType: pod
  status: Unhealthy
  locality: {region: r1, zone: z1, subzone: s1}
  capacity: 2
  nativeTunnel: true
  services:
    "ns1/svc.ns1": {80: 8080, 443: 8443}
- uid: Kubernetes//Pod/ns1/b
  namespace: ns1
  workloadIps: ["10.0.0.6"]
  networkMode: HostNetwork
  services:
    "ns1/svc.ns1": {80: 9090}
services:
- name: svc
  namespace: ns1
  hostname: svc.ns1
  vips: ["net1/10.96.0.5", "/fd00:96::5", "net1/10.200.0.0/16"]
  ports: {80: 8080, 443: 8443}
  subjectAltNames: [spiffe://cluster.local/ns/ns1/sa/sa1]
  waypoint: {destination: "ns1/waypoint.ns1", hboneMtlsPort: 15008}
  loadBalancer: {routingPreferences: [Network, Zone], mode: Strict, healthPolicy: AllowAll}
  ipFamilies: IPv4
  canonical: true
  visibility: Namespace
policies:
- name: sel
  namespace: ns1
  scope: WorkloadSelector
  action: Deny
  dryRun: true
  rules:
  - - - principals: [{Exact: cluster.local/ns/x/sa/y}, {Presence: {}}]
        notNamespaces: [{Prefix: kube-}, {Suffix: -test}]
        serviceAccounts: [{namespace: ns2, serviceAccount: client}]
        sourceIps: ["10.0.0.0/8", "192.168.1.1"]
        notDestinationIps: ["fd00::/64"]
        destinationPorts: [8080]
        notDestinationPorts: [9999]
    - []
- name: everyone
  namespace: istio-system
  scope: Global
  action: Allow
)";

std::shared_ptr<const Snapshot> snapshot_of(std::string_view yaml) {
  auto cfg = parse_local_config(yaml, "dump.yaml");
  REQUIRE_MESSAGE(cfg, cfg.error().message());
  SnapshotBuilder b;
  REQUIRE(apply_local_config(*cfg, b));
  return b.build();
}

bool has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

}  // namespace

TEST_SUITE("common/state/config_dump") {
  TEST_CASE("IPs render as text in ztunnel's field names") {
    const std::string json = config_dump_json(*snapshot_of(kConfig), /*pretty=*/false);
    CAPTURE(json);
    for (const char* want : {
             R"("workloadIps":["10.0.0.5","fd00::5"])",
             R"("workloadIps":["10.0.0.6"])",
             R"("vips":["net1/10.96.0.5","/fd00:96::5","net1/10.200.0.0/16"])",
             R"("waypoint":{"destination":"net1/10.0.0.100","hboneMtlsPort":15008})",
             R"("networkGateway":{"destination":"istio-system/eastwest.example","hboneMtlsPort":15008})",
             R"("waypoint":{"destination":"ns1/waypoint.ns1","hboneMtlsPort":15008})",
             R"("sourceIps":["10.0.0.0/8","192.168.1.1/32"])",
             R"("notDestinationIps":["fd00::/64"])",
             R"("protocol":"HBONE")",
             R"("networkMode":"HostNetwork")",
             R"("trustDomain":"cluster.local")",
             R"("serviceAccount":"sa1")",
             R"("serviceAccount":"default")",
             R"("clusterId":"Kubernetes")",
             R"("status":"Unhealthy")",
             R"("workloadType":"pod")",
             R"("capacity":2)",
             R"("applicationTunnel":{"protocol":"PROXY","port":15088})",
             R"("services":{"ns1/svc.ns1":{"80":8080,"443":8443}})",
             R"("ports":{"80":8080,"443":8443})",
             R"("loadBalancer":{"routingPreferences":["Network","Zone"],"mode":"Strict","healthPolicy":"AllowAll"})",
             R"("ipFamilies":"IPv4")",
             R"("visibility":"Namespace")",
             R"("principals":[{"Exact":"cluster.local/ns/x/sa/y"},{"Presence":{}}])",
             R"("notNamespaces":[{"Prefix":"kube-"},{"Suffix":"-test"}])",
             R"("serviceAccounts":[{"namespace":"ns2","serviceAccount":"client"}])",
             R"("scope":"WorkloadSelector","action":"Deny","dryRun":true)",
             R"("scope":"Global","action":"Allow","dryRun":false,"rules":[])",
             R"("notDestinationPorts":[9999]}],[]]])",
         }) {
      CAPTURE(want);
      CHECK(has(json, want));
    }
    // Derived endpoints, ztunnel style: uid -> {workloadUid, port, status}.
    CHECK(has(json, R"("endpoints":{"Kubernetes//Pod/ns1/a":{"workloadUid":"Kubernetes//Pod/ns1/a","port":{"80":8080,"443":8443},"status":"Unhealthy"},"Kubernetes//Pod/ns1/b":{"workloadUid":"Kubernetes//Pod/ns1/b","port":{"80":9090},"status":"Healthy"}})"));
    // Arrays are sorted by key: workload a before b, policy istio-system/everyone before ns1/sel.
    CHECK(json.find("Kubernetes//Pod/ns1/a") < json.find("Kubernetes//Pod/ns1/b"));
    CHECK(json.find(R"("name":"everyone")") < json.find(R"("name":"sel")"));
    CHECK(json.rfind(R"({"workloads":[{"uid":)", 0) == 0);
  }

  TEST_CASE("the dump reads back as the config that made it") {
    auto snap = snapshot_of(kConfig);
    const std::string json = config_dump_json(*snap);
    YAML::Node doc = YAML::Load(json);  // JSON is YAML
    for (YAML::Node s : doc["services"]) s.remove("endpoints");  // derived, not config
    YAML::Emitter out;
    out << doc;
    auto back = snapshot_of(out.c_str());
    CHECK(config_dump_json(*back) == json);
    CHECK(back->workloads().size() == 2);
    CHECK(back->policies().size() == 2);
  }

  TEST_CASE("pretty output and string escaping") {
    SnapshotBuilder b;
    Workload w;
    w.set_uid("u\"1\\");
    w.set_namespace_("ns");
    w.set_name("tab\there\nnl\x01");
    REQUIRE(b.upsert(w));
    const std::string json = config_dump_json(*b.build());
    CHECK(has(json, R"("uid": "u\"1\\")"));
    CHECK(has(json, R"("name": "tab\there\nnl\u0001")"));
    CHECK(has(json, "{\n  \"workloads\": [\n    {\n      \"uid\""));
    CHECK(has(json, "\"workloadIps\": [],"));
    CHECK(has(json, "\"services\": [],\n  \"policies\": []\n}\n"));
    CHECK(YAML::Load(json)["workloads"][0]["name"].as<std::string>() == "tab\there\nnl\x01");

    const std::string empty = config_dump_json(*Snapshot::empty(), false);
    CHECK(empty == R"({"workloads":[],"services":[],"policies":[]})");
  }

  TEST_CASE("the example config dumps") {
    auto cfg = load_local_config(test::data_dir() + "/configs/localhost.yaml");
    REQUIRE(cfg);
    SnapshotBuilder b;
    REQUIRE(apply_local_config(*cfg, b));
    const std::string json = config_dump_json(*b.build(), false);
    CHECK(has(json, R"("workloadIps":["127.0.0.1"])"));
    CHECK(has(json, R"("workloadIps":["127.0.0.2"])"));
    CHECK(has(json, R"("vips":["/127.10.0.1"])"));
    CHECK(has(json, R"("notDestinationPorts":[9999])"));
  }
}
