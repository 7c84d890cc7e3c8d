#include <doctest/doctest.h>

#include <functional>
#include <string>

#include "common/state/ip_addr.h"
#include "common/state/resource.h"

using namespace ambient;
using namespace ambient::state;

namespace {

std::string v4(const char* text) { return IpAddr::parse(text)->to_bytes(); }

Workload good_workload() {
  Workload w;
  w.set_uid("Kubernetes//Pod/ns1/a");
  w.set_name("a");
  w.set_namespace_("ns1");
  w.add_addresses(v4("10.0.0.1"));
  w.set_tunnel_protocol(istio::workload::HBONE);
  auto& ports = (*w.mutable_services())["ns1/svc.ns1.svc.cluster.local"];
  auto* p = ports.add_ports();
  p->set_service_port(80);
  p->set_target_port(8080);
  return w;
}

Service good_service() {
  Service s;
  s.set_name("svc");
  s.set_namespace_("ns1");
  s.set_hostname("svc.ns1.svc.cluster.local");
  auto* a = s.add_addresses();
  a->set_address(v4("10.96.0.1"));
  auto* p = s.add_ports();
  p->set_service_port(80);
  p->set_target_port(8080);
  return s;
}

Authorization good_policy() {
  Authorization a;
  a.set_name("allow");
  a.set_namespace_("ns1");
  a.set_scope(istio::security::NAMESPACE);
  auto* m = a.add_rules()->add_clauses()->add_matches();
  m->add_principals()->set_prefix("cluster.local/ns/ns1/");
  auto* ip = m->add_source_ips();
  ip->set_address(v4("10.0.0.0"));
  ip->set_length(8);
  m->add_destination_ports(8080);
  return a;
}

}  // namespace

TEST_SUITE("common/state/resource") {
  TEST_CASE("Istio defaults: trust domain, service account, cluster id, capacity") {
    Workload w = good_workload();
    CHECK(workload_trust_domain(w) == "cluster.local");
    CHECK(workload_service_account(w) == "default");
    CHECK(workload_cluster_id(w) == "Kubernetes");
    CHECK(workload_capacity(w) == 1);
    CHECK(workload_identity(w) == "spiffe://cluster.local/ns/ns1/sa/default");

    w.set_trust_domain("td.example");
    w.set_service_account("reviews");
    w.set_cluster_id("east");
    w.mutable_capacity()->set_value(5);
    CHECK(workload_identity(w) == "spiffe://td.example/ns/ns1/sa/reviews");
    CHECK(workload_cluster_id(w) == "east");
    CHECK(workload_capacity(w) == 5);

    Workload d = good_workload();
    apply_defaults(d);
    CHECK(d.trust_domain() == "cluster.local");
    CHECK(d.service_account() == "default");
    CHECK(d.cluster_id() == "Kubernetes");
    REQUIRE(d.has_capacity());
    CHECK(d.capacity().value() == 1);
    apply_defaults(w);  // explicit values are kept
    CHECK(w.trust_domain() == "td.example");
    CHECK(w.capacity().value() == 5);
  }

  TEST_CASE("keys") {
    CHECK(service_key(good_service()) == "ns1/svc.ns1.svc.cluster.local");
    CHECK(policy_key(good_policy()) == "ns1/allow");
    auto nh = split_namespaced_host("ns/a/b");
    REQUIRE(nh);
    CHECK(nh->first == "ns");
    CHECK(nh->second == "a/b");
    for (const char* bad : {"", "ns", "/host", "ns/"}) {
      CAPTURE(bad);
      CHECK_FALSE(split_namespaced_host(bad));
    }
  }

  TEST_CASE("valid resources pass") {
    CHECK(validate(good_workload()));
    CHECK(validate(good_service()));
    CHECK(validate(good_policy()));
    Workload hostname_only = good_workload();
    hostname_only.clear_addresses();
    hostname_only.set_hostname("vm.example.com");
    CHECK(validate(hostname_only));
  }

  TEST_CASE("bad workloads name the resource and the field") {
    struct Row {
      const char* name;
      std::function<void(Workload&)> mutate;
      const char* message;
      ErrorKind kind = ErrorKind::InvalidArgument;
    };
    const Row rows[] = {
        {"no uid", [](Workload& w) { w.clear_uid(); }, "workload \"a\": uid: missing"},
        {"no namespace", [](Workload& w) { w.clear_namespace_(); },
         "workload \"Kubernetes//Pod/ns1/a\": namespace: missing"},
        {"3-byte address", [](Workload& w) { w.add_addresses("abc"); },
         "workload \"Kubernetes//Pod/ns1/a\": addresses[1]: 3 bytes, want 4 (IPv4) or 16 (IPv6)"},
        {"legacy mTLS", [](Workload& w) { w.set_tunnel_protocol(istio::workload::LEGACY_ISTIO_MTLS); },
         "tunnel_protocol: LEGACY_ISTIO_MTLS is not supported", ErrorKind::Unsupported},
        {"unknown tunnel protocol", [](Workload& w) { w.set_tunnel_protocol(static_cast<istio::workload::TunnelProtocol>(7)); },
         "tunnel_protocol: unknown value 7"},
        {"unknown status", [](Workload& w) { w.set_status(static_cast<istio::workload::WorkloadStatus>(9)); },
         "status: unknown value 9"},
        {"waypoint without destination", [](Workload& w) { w.mutable_waypoint()->set_hbone_mtls_port(15008); },
         "waypoint: no destination"},
        {"waypoint bad address", [](Workload& w) {
           w.mutable_waypoint()->mutable_address()->set_address("12345");
           w.mutable_waypoint()->set_hbone_mtls_port(15008);
         }, "waypoint.address.address: 5 bytes"},
        {"waypoint port 0", [](Workload& w) {
           w.mutable_waypoint()->mutable_address()->set_address(v4("10.0.0.9"));
         }, "waypoint.hbone_mtls_port: 0 is not a port"},
        {"gateway hostname without namespace", [](Workload& w) {
           w.mutable_network_gateway()->mutable_hostname()->set_hostname("gw.example");
           w.mutable_network_gateway()->set_hbone_mtls_port(15008);
         }, "network_gateway.hostname.namespace: missing"},
        {"service key without slash", [](Workload& w) { (*w.mutable_services())["nohost"]; },
         "services[\"nohost\"]: key is not \"namespace/hostname\""},
        {"service port 0", [](Workload& w) {
           (*w.mutable_services())["ns1/x"].add_ports()->set_target_port(80);
         }, "services[\"ns1/x\"].ports[0].service_port: 0 is not a port"},
        {"target port too big", [](Workload& w) {
           auto* p = (*w.mutable_services())["ns1/x"].add_ports();
           p->set_service_port(80);
           p->set_target_port(70000);
         }, "services[\"ns1/x\"].ports[0].target_port: 70000 is not a port"},
        {"duplicate service port", [](Workload& w) {
           auto& l = (*w.mutable_services())["ns1/x"];
           l.add_ports()->set_service_port(80);
           l.add_ports()->set_service_port(80);
         }, "services[\"ns1/x\"].ports[1].service_port: service port 80 listed twice"},
        {"app tunnel port", [](Workload& w) { w.mutable_application_tunnel()->set_port(65536); },
         "application_tunnel.port: 65536 is not a port"},
        {"empty policy name", [](Workload& w) { w.add_authorization_policies(""); },
         "authorization_policies[0]: empty name"},
        {"capacity 0", [](Workload& w) { w.mutable_capacity()->set_value(0); }, "capacity: 0;"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.name);
      Workload w = good_workload();
      row.mutate(w);
      auto r = validate(w);
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == row.kind);
      CHECK_MESSAGE(r.error().context.find(row.message) != std::string::npos, r.error().context);
    }
  }

  TEST_CASE("bad services") {
    struct Row { const char* name; std::function<void(Service&)> mutate; const char* message; };
    const Row rows[] = {
        {"no hostname", [](Service& s) { s.clear_hostname(); }, "service \"ns1/\": hostname: missing"},
        {"no namespace", [](Service& s) { s.clear_namespace_(); }, "namespace: missing"},
        {"bad VIP", [](Service& s) { s.add_addresses()->set_address("xx"); },
         "service \"ns1/svc.ns1.svc.cluster.local\": addresses[1].address: 2 bytes"},
        {"VIP prefix too long", [](Service& s) { s.mutable_addresses(0)->set_length(33); },
         "addresses[0].length: 33 is longer than 32 bits"},
        {"port out of range", [](Service& s) { s.mutable_ports(0)->set_service_port(65536); },
         "ports[0].service_port: 65536 is not a port"},
        {"unspecified routing scope", [](Service& s) {
           s.mutable_load_balancing()->add_routing_preference(istio::workload::LoadBalancing::UNSPECIFIED_SCOPE);
         }, "load_balancing.routing_preference[0]: invalid scope 0"},
        {"unknown LB mode", [](Service& s) {
           s.mutable_load_balancing()->set_mode(static_cast<istio::workload::LoadBalancing::Mode>(42));
         }, "load_balancing.mode: unknown value 42"},
        {"weighted waypoint without destination", [](Service& s) { s.add_weighted_waypoints()->set_weight(1); },
         "weighted_waypoints[0].destination: missing"},
        {"unknown ip family", [](Service& s) { s.set_ip_families(static_cast<istio::workload::IPFamilies>(8)); },
         "ip_families: unknown value 8"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.name);
      Service s = good_service();
      row.mutate(s);
      auto r = validate(s);
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::InvalidArgument);
      CHECK_MESSAGE(r.error().context.find(row.message) != std::string::npos, r.error().context);
    }
  }

  TEST_CASE("bad policies") {
    using M = istio::security::Match;
    auto match = [](Authorization& a) -> M& { return *a.mutable_rules(0)->mutable_clauses(0)->mutable_matches(0); };
    struct Row { const char* name; std::function<void(Authorization&)> mutate; const char* message; };
    const Row rows[] = {
        {"no name", [](Authorization& a) { a.clear_name(); }, "policy \"ns1/\": name: missing"},
        {"namespace scope without namespace", [](Authorization& a) { a.clear_namespace_(); },
         "namespace: missing (required for NAMESPACE scope)"},
        {"unknown action", [](Authorization& a) { a.set_action(static_cast<istio::security::Action>(5)); },
         "action: unknown value 5"},
        {"empty string match", [&](Authorization& a) { match(a).add_not_principals(); },
         "rules[0].clauses[0].matches[0].not_principals[0]: no match type"},
        {"bad CIDR bytes", [&](Authorization& a) { match(a).add_destination_ips()->set_address("1"); },
         "rules[0].clauses[0].matches[0].destination_ips[0].address: 1 bytes"},
        {"CIDR too long", [&](Authorization& a) { match(a).mutable_source_ips(0)->set_length(40); },
         "source_ips[0].length: 40 is longer than 32 bits"},
        {"port 0", [&](Authorization& a) { match(a).add_not_destination_ports(0); },
         "not_destination_ports[0]: 0 is not a port"},
        {"service account without name", [&](Authorization& a) { match(a).add_service_accounts()->set_namespace_("x"); },
         "service_accounts[0].service_account: missing"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.name);
      Authorization a = good_policy();
      row.mutate(a);
      auto r = validate(a);
      REQUIRE_FALSE(r);
      CHECK_MESSAGE(r.error().context.find(row.message) != std::string::npos, r.error().context);
    }
    Authorization global = good_policy();
    global.set_scope(istio::security::GLOBAL);
    global.clear_namespace_();
    CHECK(validate(global));  // GLOBAL needs no namespace
  }
}
