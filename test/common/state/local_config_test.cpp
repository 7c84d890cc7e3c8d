#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/state/ip_addr.h"
#include "common/state/local_config.h"
#include "test/support/paths.h"

using namespace ambient;
using namespace ambient::state;

namespace {

std::string ip_bytes(const char* text) { return IpAddr::parse(text)->to_bytes(); }

const Workload* find_workload(const LocalConfig& c, std::string_view uid) {
  for (const auto& a : c.addresses) {
    if (a.has_workload() && a.workload().uid() == uid) return &a.workload();
  }
  return nullptr;
}

const Service* find_service(const LocalConfig& c, std::string_view hostname) {
  for (const auto& a : c.addresses) {
    if (a.has_service() && a.service().hostname() == hostname) return &a.service();
  }
  return nullptr;
}

}  // namespace

TEST_SUITE("common/state/local_config") {
  TEST_CASE("the example file: two local workloads, a service with a VIP, an allow policy") {
    auto cfg = load_local_config(test::data_dir() + "/configs/localhost.yaml");
    REQUIRE_MESSAGE(cfg, cfg.error().message());
    REQUIRE(cfg->addresses.size() == 3);
    CHECK(cfg->addresses[0].has_workload());
    CHECK(cfg->addresses[1].has_workload());
    CHECK(cfg->addresses[2].has_service());  // services after workloads
    REQUIRE(cfg->policies.size() == 1);

    SnapshotBuilder b;
    REQUIRE(apply_local_config(*cfg, b));
    auto snap = b.build();
    const Workload* hbone = snap->workload_by_ip("", *IpAddr::parse("127.0.0.1"));
    REQUIRE(hbone != nullptr);
    CHECK(hbone->name() == "local");
    CHECK(hbone->tunnel_protocol() == istio::workload::HBONE);
    CHECK(workload_identity(*hbone) == "spiffe://cluster.local/ns/default/sa/default");
    const Workload* tcp = snap->workload_by_ip("", *IpAddr::parse("127.0.0.2"));
    REQUIRE(tcp != nullptr);
    CHECK(tcp->tunnel_protocol() == istio::workload::NONE);
    CHECK(tcp->node() == "local");

    const Service* svc = snap->service_by_vip("", *IpAddr::parse("127.10.0.1"));
    REQUIRE(svc != nullptr);
    CHECK(svc->hostname() == "example.com");
    REQUIRE(svc->ports_size() == 1);
    CHECK(svc->ports(0).service_port() == 80);
    CHECK(svc->ports(0).target_port() == 8080);
    auto eps = snap->endpoints(*svc);
    REQUIRE(eps.size() == 2);
    for (const auto& e : eps) {
      REQUIRE(e.ports != nullptr);
      REQUIRE(e.ports->ports_size() == 1);
      CHECK(e.ports->ports(0).target_port() == 8080);
    }
    auto policies = snap->policies_for(*hbone);
    REQUIRE(policies.size() == 1);
    CHECK(policies[0]->action() == istio::security::ALLOW);
    CHECK(policies[0]->rules(0).clauses(0).matches(0).not_destination_ports(0) == 9999);
    CHECK(snap->warnings().empty());
  }

  TEST_CASE("every field lands in its proto field") {
    const char* yaml = R"(
workloads:
- uid: Kubernetes//Pod/ns1/full
  name: full
  namespace: ns1
  serviceAccount: sa1
  trustDomain: td.example
  workloadIps: ["10.0.0.5", "fd00::5"]
  protocol: HBONE
  networkMode: HostNetwork
  node: node-a
  network: net1
  waypoint: {destination: "net1/10.0.0.100", hboneMtlsPort: 15009}
  networkGateway: {destination: "istio-system/eastwest.istio-system.svc.cluster.local"}
  applicationTunnel: {protocol: PROXY, port: 15088}
  authorizationPolicies: [ns1/p1, istio-system/strict]
  canonicalName: full-app
  canonicalRevision: v2
  workloadName: full-deploy
  workloadType: deployment
  status: Unhealthy
  clusterId: east
  locality: {region: r1, zone: z1, subzone: s1}
  capacity: 3
  hostname: full.example.com
  nativeTunnel: true
  services:
    "ns1/full.ns1.svc.cluster.local": {443: 8443, 80: 8080}
    "ns1/named.ns1": {9000: 0}
services:
- name: full
  namespace: ns1
  hostname: full.ns1.svc.cluster.local
  vips: ["net1/10.96.0.5", "/fd00:96::5", "net1/10.200.0.0/16"]
  ports: {80: 8080, 443: 8443}
  subjectAltNames: [spiffe://td.example/ns/ns1/sa/sa1]
  waypoint: {destination: "ns1/waypoint.ns1.svc.cluster.local", hboneMtlsPort: 15008}
  loadBalancer: {routingPreferences: [Network, Region, Zone, Subzone, Node, Cluster], mode: Failover, healthPolicy: AllowAll}
  ipFamilies: Dual
  canonical: true
  visibility: Namespace
policies:
- name: p1
  namespace: ns1
  scope: WorkloadSelector
  action: Deny
  dryRun: true
  rules:
  - - - namespaces: [{Exact: ns2}]
        notNamespaces: [{Prefix: kube-}]
        principals: [{Suffix: /sa/admin}, {Presence: {}}]
        notPrincipals: [!Exact cluster.local/ns/x/sa/y, !Presence []]
        serviceAccounts: [{namespace: ns2, serviceAccount: client}]
        notServiceAccounts: [{namespace: ns3, serviceAccount: bad}]
        sourceIps: ["10.0.0.0/8", "192.168.1.1"]
        notSourceIps: ["10.9.0.0/16"]
        destinationIps: ["fd00::/64"]
        notDestinationIps: ["10.0.0.7"]
        destinationPorts: [8080, 8443]
        notDestinationPorts: [9999]
      - destinationPorts: [1]
    - []
  - []
)";
    auto cfg = parse_local_config(yaml, "full.yaml");
    REQUIRE_MESSAGE(cfg, cfg.error().message());
    const Workload* w = find_workload(*cfg, "Kubernetes//Pod/ns1/full");
    REQUIRE(w != nullptr);
    CHECK(w->name() == "full");
    CHECK(w->namespace_() == "ns1");
    CHECK(w->service_account() == "sa1");
    CHECK(w->trust_domain() == "td.example");
    REQUIRE(w->addresses_size() == 2);
    CHECK(w->addresses(0) == ip_bytes("10.0.0.5"));
    CHECK(w->addresses(1) == ip_bytes("fd00::5"));
    CHECK(w->tunnel_protocol() == istio::workload::HBONE);
    CHECK(w->network_mode() == istio::workload::HOST_NETWORK);
    CHECK(w->node() == "node-a");
    CHECK(w->network() == "net1");
    REQUIRE(w->waypoint().has_address());
    CHECK(w->waypoint().address().network() == "net1");
    CHECK(w->waypoint().address().address() == ip_bytes("10.0.0.100"));
    CHECK(w->waypoint().hbone_mtls_port() == 15009);
    REQUIRE(w->network_gateway().has_hostname());
    CHECK(w->network_gateway().hostname().namespace_() == "istio-system");
    CHECK(w->network_gateway().hostname().hostname() == "eastwest.istio-system.svc.cluster.local");
    CHECK(w->network_gateway().hbone_mtls_port() == 15008);  // default
    CHECK(w->application_tunnel().protocol() == istio::workload::ApplicationTunnel::PROXY);
    CHECK(w->application_tunnel().port() == 15088);
    REQUIRE(w->authorization_policies_size() == 2);
    CHECK(w->authorization_policies(1) == "istio-system/strict");
    CHECK(w->canonical_name() == "full-app");
    CHECK(w->canonical_revision() == "v2");
    CHECK(w->workload_name() == "full-deploy");
    CHECK(w->workload_type() == istio::workload::DEPLOYMENT);
    CHECK(w->status() == istio::workload::UNHEALTHY);
    CHECK(w->cluster_id() == "east");
    CHECK(w->locality().region() == "r1");
    CHECK(w->locality().zone() == "z1");
    CHECK(w->locality().subzone() == "s1");
    CHECK(w->capacity().value() == 3);
    CHECK(w->hostname() == "full.example.com");
    CHECK(w->native_tunnel());
    REQUIRE(w->services().count("ns1/full.ns1.svc.cluster.local") == 1);
    const auto& pl = w->services().at("ns1/full.ns1.svc.cluster.local");
    REQUIRE(pl.ports_size() == 2);  // sorted by service port
    CHECK(pl.ports(0).service_port() == 80);
    CHECK(pl.ports(0).target_port() == 8080);
    CHECK(pl.ports(1).service_port() == 443);
    CHECK(pl.ports(1).target_port() == 8443);
    CHECK(w->services().at("ns1/named.ns1").ports(0).target_port() == 0);  // named port

    const Service* s = find_service(*cfg, "full.ns1.svc.cluster.local");
    REQUIRE(s != nullptr);
    CHECK(s->name() == "full");
    CHECK(s->namespace_() == "ns1");
    REQUIRE(s->addresses_size() == 3);
    CHECK(s->addresses(0).network() == "net1");
    CHECK(s->addresses(0).address() == ip_bytes("10.96.0.5"));
    CHECK_FALSE(s->addresses(0).has_length());
    CHECK(s->addresses(1).network() == "");
    CHECK(s->addresses(1).address() == ip_bytes("fd00:96::5"));
    CHECK(s->addresses(2).address() == ip_bytes("10.200.0.0"));
    REQUIRE(s->addresses(2).has_length());
    CHECK(s->addresses(2).length() == 16);
    REQUIRE(s->ports_size() == 2);
    CHECK(s->ports(1).service_port() == 443);
    CHECK(s->subject_alt_names(0) == "spiffe://td.example/ns/ns1/sa/sa1");
    CHECK(s->waypoint().hostname().hostname() == "waypoint.ns1.svc.cluster.local");
    using LB = istio::workload::LoadBalancing;
    const auto& lb = s->load_balancing();
    CHECK(std::vector<int>(lb.routing_preference().begin(), lb.routing_preference().end()) ==
          std::vector<int>{LB::NETWORK, LB::REGION, LB::ZONE, LB::SUBZONE, LB::NODE, LB::CLUSTER});
    CHECK(lb.mode() == LB::FAILOVER);
    CHECK(lb.health_policy() == LB::ALLOW_ALL);
    CHECK(s->ip_families() == istio::workload::DUAL);
    CHECK(s->canonical());
    CHECK(s->visibility() == istio::workload::Service::NAMESPACE);

    REQUIRE(cfg->policies.size() == 1);
    const auto& p = cfg->policies[0];
    CHECK(p.name() == "p1");
    CHECK(p.namespace_() == "ns1");
    CHECK(p.scope() == istio::security::WORKLOAD_SELECTOR);
    CHECK(p.action() == istio::security::DENY);
    CHECK(p.dry_run());
    REQUIRE(p.rules_size() == 2);
    REQUIRE(p.rules(0).clauses_size() == 2);
    CHECK(p.rules(0).clauses(1).matches_size() == 0);
    CHECK(p.rules(1).clauses_size() == 0);
    REQUIRE(p.rules(0).clauses(0).matches_size() == 2);
    const auto& m = p.rules(0).clauses(0).matches(0);
    CHECK(m.namespaces(0).exact() == "ns2");
    CHECK(m.not_namespaces(0).prefix() == "kube-");
    CHECK(m.principals(0).suffix() == "/sa/admin");
    CHECK(m.principals(1).has_presence());
    CHECK(m.not_principals(0).exact() == "cluster.local/ns/x/sa/y");
    CHECK(m.not_principals(1).has_presence());
    CHECK(m.service_accounts(0).namespace_() == "ns2");
    CHECK(m.service_accounts(0).service_account() == "client");
    CHECK(m.not_service_accounts(0).service_account() == "bad");
    REQUIRE(m.source_ips_size() == 2);
    CHECK(m.source_ips(0).address() == ip_bytes("10.0.0.0"));
    CHECK(m.source_ips(0).length() == 8);
    CHECK(m.source_ips(1).address() == ip_bytes("192.168.1.1"));
    CHECK(m.source_ips(1).length() == 32);
    CHECK(m.not_source_ips(0).length() == 16);
    CHECK(m.destination_ips(0).address() == ip_bytes("fd00::"));
    CHECK(m.destination_ips(0).length() == 64);
    CHECK(m.not_destination_ips(0).length() == 32);
    CHECK(std::vector<unsigned>(m.destination_ports().begin(), m.destination_ports().end()) ==
          std::vector<unsigned>{8080, 8443});
    CHECK(m.not_destination_ports(0) == 9999);
    CHECK(p.rules(0).clauses(0).matches(1).destination_ports(0) == 1);
  }

  TEST_CASE("defaults and null values") {
    auto cfg = parse_local_config(R"(
workloads:
- uid: u1
  namespace: ns
  name:
  services:
    "ns/h": ~
policies:
- {name: g, scope: Global, action: Allow, rules: [[[{principals: [{Presence: }]}]]]}
)", "d.yaml");
    REQUIRE_MESSAGE(cfg, cfg.error().message());
    const Workload* w = find_workload(*cfg, "u1");
    REQUIRE(w != nullptr);
    CHECK(w->name().empty());
    CHECK(w->addresses_size() == 0);
    CHECK(w->tunnel_protocol() == istio::workload::NONE);  // ztunnel's default protocol is TCP
    CHECK(w->status() == istio::workload::HEALTHY);
    CHECK(w->workload_type() == istio::workload::DEPLOYMENT);
    CHECK_FALSE(w->has_capacity());
    CHECK(w->services().at("ns/h").ports_size() == 0);
    CHECK(w->trust_domain().empty());  // defaults are applied by the builder
    CHECK(workload_identity(*w) == "spiffe://cluster.local/ns/ns/sa/default");
    CHECK(workload_capacity(*w) == 1);
    CHECK(cfg->policies[0].namespace_().empty());
    CHECK_FALSE(cfg->policies[0].dry_run());
    CHECK(cfg->policies[0].rules(0).clauses(0).matches(0).principals(0).has_presence());

    SnapshotBuilder b;
    REQUIRE(apply_local_config(*cfg, b));
    const Workload* stored = b.build()->workload_by_uid("u1");
    REQUIRE(stored != nullptr);
    CHECK(stored->trust_domain() == "cluster.local");
    CHECK(stored->service_account() == "default");
    CHECK(stored->cluster_id() == "Kubernetes");
    CHECK(stored->capacity().value() == 1);

    for (const char* empty : {"", "# nothing\n", "---\n", "workloads: []\nservices:\npolicies: ~\n"}) {
      CAPTURE(empty);
      auto e = parse_local_config(empty, "e.yaml");
      REQUIRE_MESSAGE(e, e.error().message());
      CHECK(e->addresses.empty());
      CHECK(e->policies.empty());
    }
  }

  TEST_CASE("bad input: file, line and field path in every error") {
    struct Row { const char* name; const char* yaml; const char* error; };
    const Row rows[] = {
        {"top level is a list (ztunnel's old format)", "- name: x\n",
         "t.yaml:1: expected a map with workloads, services and policies, got a list"},
        {"unknown top-level field", "workloads: []\nendpoints: []\n", "t.yaml:2: endpoints: unknown field (known: workloads, services, policies)"},
        {"unknown workload field", "workloads:\n- uid: u\n  namespace: ns\n  workloadIP: 10.0.0.1\n",
         "t.yaml:4: workloads[0].workloadIP: unknown field (known: uid, name,"},
        {"missing uid", "workloads:\n- name: a\n  namespace: ns\n", "t.yaml:2: workloads[0]: missing required field \"uid\""},
        {"null uid", "workloads:\n- uid:\n  namespace: ns\n", "t.yaml:2: workloads[0]: missing required field \"uid\""},
        {"missing namespace", "workloads:\n- uid: u\n", "t.yaml:2: workloads[0]: missing required field \"namespace\""},
        {"workload is not a map", "workloads:\n- just-a-string\n", "t.yaml:2: workloads[0]: expected a map, got a scalar"},
        {"workloads is not a list", "workloads: {a: 1}\n", "t.yaml:1: workloads: expected a list, got a map"},
        {"bad IP", "workloads:\n- uid: u\n  namespace: ns\n  workloadIps: [\"10.0.0.1\", \"10.0.0.300\"]\n",
         "t.yaml:4: workloads[0].workloadIps[1]: \"10.0.0.300\" is not an IP address"},
        {"IPs not a list", "workloads:\n- uid: u\n  namespace: ns\n  workloadIps: 10.0.0.1\n",
         "t.yaml:4: workloads[0].workloadIps: expected a list, got a scalar"},
        {"string field given a list", "workloads:\n- uid: u\n  namespace: ns\n  name: [a]\n",
         "t.yaml:4: workloads[0].name: expected a string, got a list"},
        {"unknown protocol", "workloads:\n- uid: u\n  namespace: ns\n  protocol: MTLS\n",
         "t.yaml:4: workloads[0].protocol: \"MTLS\" is not one of HBONE, TCP"},
        {"protocol is case-sensitive", "workloads:\n- uid: u\n  namespace: ns\n  protocol: hbone\n",
         "t.yaml:4: workloads[0].protocol: \"hbone\" is not one of HBONE, TCP"},
        {"unknown status", "workloads:\n- uid: u\n  namespace: ns\n  status: Ready\n",
         "t.yaml:4: workloads[0].status: \"Ready\" is not one of Healthy, Unhealthy"},
        {"unknown workload type", "workloads:\n- uid: u\n  namespace: ns\n  workloadType: statefulset\n",
         "t.yaml:4: workloads[0].workloadType: \"statefulset\" is not one of deployment, cronjob, pod, job"},
        {"bad bool", "workloads:\n- uid: u\n  namespace: ns\n  nativeTunnel: yes\n",
         "t.yaml:4: workloads[0].nativeTunnel: expected true or false, got \"yes\""},
        {"quoted bool", "workloads:\n- uid: u\n  namespace: ns\n  nativeTunnel: \"true\"\n",
         "t.yaml:4: workloads[0].nativeTunnel: expected true or false, got \"true\""},
        {"capacity 0", "workloads:\n- uid: u\n  namespace: ns\n  capacity: 0\n",
         "t.yaml:4: workloads[0].capacity: \"0\" is not a capacity (1..4294967295)"},
        {"negative capacity", "workloads:\n- uid: u\n  namespace: ns\n  capacity: -1\n",
         "t.yaml:4: workloads[0].capacity: \"-1\" is not a capacity"},
        {"bad target port", "workloads:\n- uid: u\n  namespace: ns\n  services:\n    ns/h:\n      80: 70000\n",
         "t.yaml:6: workloads[0].services[\"ns/h\"][\"80\"]: \"70000\" is not a port (0..65535)"},
        {"bad service port", "workloads:\n- uid: u\n  namespace: ns\n  services:\n    ns/h: {http: 80}\n",
         "t.yaml:5: workloads[0].services[\"ns/h\"][\"http\"]: \"http\" is not a port (1..65535)"},
        {"service key without namespace", "workloads:\n- uid: u\n  namespace: ns\n  services:\n    h.example: {80: 80}\n",
         "t.yaml:5: workloads[0].services[\"h.example\"]: \"h.example\" is not \"namespace/hostname\""},
        {"services given a list", "workloads:\n- uid: u\n  namespace: ns\n  services: [ns/h]\n",
         "t.yaml:4: workloads[0].services: expected a map, got a list"},
        {"duplicate field", "workloads:\n- uid: u\n  namespace: ns\n  uid: v\n", "t.yaml:4: workloads[0].uid: duplicate field"},
        {"duplicate uid", "workloads:\n- uid: u\n  namespace: ns\n- uid: u\n  namespace: ns2\n",
         "t.yaml:4: workloads[1]: \"u\" is already defined by workloads[0]"},
        {"waypoint without destination", "workloads:\n- uid: u\n  namespace: ns\n  waypoint:\n    hboneMtlsPort: 15008\n",
         "t.yaml:5: workloads[0].waypoint: missing required field \"destination\""},
        {"waypoint destination unparsable", "workloads:\n- uid: u\n  namespace: ns\n  waypoint: {destination: wp}\n",
         "t.yaml:4: workloads[0].waypoint.destination: \"wp\" is neither \"network/IP\" nor \"namespace/hostname\""},
        {"waypoint port 0", "workloads:\n- uid: u\n  namespace: ns\n  waypoint: {destination: /10.0.0.1, hboneMtlsPort: 0}\n",
         "t.yaml:4: workloads[0].waypoint.hboneMtlsPort: \"0\" is not a port (1..65535)"},
        {"unknown gateway field", "workloads:\n- uid: u\n  namespace: ns\n  networkGateway: {destination: /10.0.0.1, port: 1}\n",
         "t.yaml:4: workloads[0].networkGateway.port: unknown field (known: destination, hboneMtlsPort)"},
        {"app tunnel without protocol", "workloads:\n- uid: u\n  namespace: ns\n  applicationTunnel: {port: 15088}\n",
         "t.yaml:4: workloads[0].applicationTunnel: missing required field \"protocol\""},
        {"unknown locality field", "workloads:\n- uid: u\n  namespace: ns\n  locality: {region: r, country: c}\n",
         "t.yaml:4: workloads[0].locality.country: unknown field (known: region, zone, subzone)"},
        {"service without hostname", "services:\n- name: s\n  namespace: ns\n", "t.yaml:2: services[0]: missing required field \"hostname\""},
        {"VIP without network", "services:\n- {namespace: ns, hostname: h, vips: [10.0.0.1]}\n",
         "t.yaml:2: services[0].vips[0]: \"10.0.0.1\" is not \"network/IP\""},
        {"bad VIP IP", "services:\n- namespace: ns\n  hostname: h\n  vips:\n  - /10.0.0.300\n",
         "t.yaml:5: services[0].vips[0]: \"/10.0.0.300\" is not \"network/IP\""},
        {"bad service port", "services:\n- namespace: ns\n  hostname: h\n  ports: {0: 80}\n",
         "t.yaml:4: services[0].ports[\"0\"]: \"0\" is not a port (1..65535)"},
        {"service endpoints", "services:\n- namespace: ns\n  hostname: h\n  endpoints: {}\n",
         "t.yaml:4: services[0].endpoints: not supported: list the service under each workload's `services` map instead"},
        {"unknown LB mode", "services:\n- namespace: ns\n  hostname: h\n  loadBalancer: {mode: Random}\n",
         "t.yaml:4: services[0].loadBalancer.mode: \"Random\" is not one of Standard, Strict, Failover, Passthrough"},
        {"unknown routing preference", "services:\n- namespace: ns\n  hostname: h\n  loadBalancer:\n    routingPreferences: [Zone, Planet]\n",
         "t.yaml:5: services[0].loadBalancer.routingPreferences[1]: \"Planet\" is not one of Region, Zone, Subzone, Node, Cluster, Network"},
        {"unknown ip family", "services:\n- {namespace: ns, hostname: h, ipFamilies: IPv5}\n",
         "t.yaml:2: services[0].ipFamilies: \"IPv5\" is not one of Dual, IPv4, IPv6"},
        {"duplicate service", "services:\n- {namespace: ns, hostname: h}\n- {namespace: ns, hostname: h}\n",
         "t.yaml:3: services[1]: \"ns/h\" is already defined by services[0]"},
        {"policy without action", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n",
         "t.yaml:2: policies[0]: missing required field \"action\""},
        {"unknown scope", "policies:\n- {name: p, namespace: ns, scope: Cluster, action: Allow}\n",
         "t.yaml:2: policies[0].scope: \"Cluster\" is not one of Global, Namespace, WorkloadSelector"},
        {"unknown action", "policies:\n- {name: p, namespace: ns, scope: Namespace, action: Audit}\n",
         "t.yaml:2: policies[0].action: \"Audit\" is not one of Allow, Deny"},
        {"namespace scope without namespace", "policies:\n- {name: p, scope: Namespace, action: Allow}\n",
         "t.yaml:2: policies[0]: namespace: missing (required for NAMESPACE scope)"},
        {"rules not nested three deep", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - notDestinationPorts: [1]\n",
         "t.yaml:7: policies[0].rules[0]: expected a list, got a map"},
        {"unknown match field", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - - - hosts: [a]\n",
         "t.yaml:7: policies[0].rules[0][0][0].hosts: unknown field (known: namespaces, notNamespaces,"},
        {"bad CIDR", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - - - sourceIps: [10.0.0.0/33]\n",
         "t.yaml:7: policies[0].rules[0][0][0].sourceIps[0]: \"10.0.0.0/33\" is not an IP address or CIDR range"},
        {"bad match port", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - - - destinationPorts: [8080, 65536]\n",
         "t.yaml:7: policies[0].rules[0][0][0].destinationPorts[1]: \"65536\" is not a port (1..65535)"},
        {"unknown string match kind", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - - - principals: [{Regex: x}]\n",
         "t.yaml:7: policies[0].rules[0][0][0].principals[0]: \"Regex\" is not one of Exact, Prefix, Suffix, Presence"},
        {"string match with two kinds", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - - - principals: [{Exact: x, Prefix: y}]\n",
         "t.yaml:7: policies[0].rules[0][0][0].principals[0]: expected one of {Exact: x}, {Prefix: x}, {Suffix: x}, {Presence: {}}"},
        {"bare string as string match", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - - - namespaces: [ns1]\n",
         "t.yaml:7: policies[0].rules[0][0][0].namespaces[0]: expected one of {Exact: x}"},
        {"presence with a value", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - - - principals: [{Presence: x}]\n",
         "t.yaml:7: policies[0].rules[0][0][0].principals[0].Presence: Presence takes no value (write {Presence: {}})"},
        {"unknown tag", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - - - principals: [!Glob x]\n",
         "t.yaml:7: policies[0].rules[0][0][0].principals[0]: \"Glob\" is not one of Exact, Prefix, Suffix, Presence"},
        {"tagged presence with a value", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - - - principals: [!Presence x]\n",
         "t.yaml:7: policies[0].rules[0][0][0].principals[0]: Presence takes no value (write !Presence [])"},
        {"null rule (would match everything)", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - \n  - - - destinationPorts: [80]\n",
         "t.yaml:7: policies[0].rules[0]: empty list element"},
        {"null IP", "workloads:\n- uid: u\n  namespace: ns\n  workloadIps: [10.0.0.1, ~]\n",
         "t.yaml:4: workloads[0].workloadIps[1]: empty list element"},
        {"service account without name", "policies:\n- name: p\n  namespace: ns\n  scope: Namespace\n  action: Allow\n  rules:\n  - - - serviceAccounts: [{namespace: ns}]\n",
         "t.yaml:7: policies[0].rules[0][0][0].serviceAccounts[0]: missing required field \"serviceAccount\""},
        {"duplicate policy", "policies:\n- {name: p, namespace: ns, scope: Namespace, action: Allow}\n- {name: p, namespace: ns, scope: Global, action: Deny}\n",
         "t.yaml:3: policies[1]: \"ns/p\" is already defined by policies[0]"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.name);
      auto r = parse_local_config(row.yaml, "t.yaml");
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::InvalidArgument);
      CHECK_MESSAGE(r.error().context.rfind(row.error, 0) == 0, r.error().context);
    }
  }

  TEST_CASE("YAML syntax errors and unreadable files") {
    auto r = parse_local_config("workloads:\n- uid: u\n  namespace: [ns\n", "s.yaml");
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Parse);
    CHECK_MESSAGE(r.error().context.rfind("s.yaml:", 0) == 0, r.error().context);
    CHECK(r.error().context.find("YAML:") != std::string::npos);

    auto tab = parse_local_config("workloads:\n\t- uid: u\n", "tab.yaml");
    REQUIRE_FALSE(tab);
    CHECK_MESSAGE(tab.error().context.rfind("tab.yaml:2:", 0) == 0, tab.error().context);

    auto missing = load_local_config("/nonexistent/dir/config.yaml");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == ErrorKind::NotFound);
    CHECK(missing.error().context.rfind("/nonexistent/dir/config.yaml: cannot open", 0) == 0);
  }

  TEST_CASE("apply_local_config replaces everything, or nothing on error") {
    SnapshotBuilder b;
    auto first = parse_local_config("workloads:\n- {uid: old, namespace: ns, workloadIps: [10.0.0.1]}\n", "a.yaml");
    REQUIRE(first);
    REQUIRE(apply_local_config(*first, b));
    auto second = parse_local_config("workloads:\n- {uid: new, namespace: ns, workloadIps: [10.0.0.2]}\n", "b.yaml");
    REQUIRE(second);
    REQUIRE(apply_local_config(*second, b));
    auto snap = b.build();
    CHECK(snap->workload_by_uid("old") == nullptr);
    CHECK(snap->workload_by_uid("new") != nullptr);

    LocalConfig bad = *second;
    bad.addresses[0].mutable_workload()->set_uid("newer");
    bad.addresses.emplace_back();  // neither workload nor service
    CHECK_FALSE(apply_local_config(bad, b));
    LocalConfig bad_policy;
    bad_policy.policies.emplace_back();  // no name
    CHECK_FALSE(apply_local_config(bad_policy, b));
    auto after = b.build();
    CHECK(after->workload_by_uid("new") != nullptr);
    CHECK(after->workload_by_uid("newer") == nullptr);
  }
}
