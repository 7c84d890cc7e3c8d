#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/state/ip_addr.h"
#include "common/state/snapshot_builder.h"

using namespace ambient;
using namespace ambient::state;

namespace {

IpAddr ip(const char* text) { return *IpAddr::parse(text); }

Workload workload(const std::string& uid, const std::string& ns, std::vector<const char*> ips,
                  const std::string& network = "") {
  Workload w;
  w.set_uid(uid);
  w.set_name(uid.substr(uid.rfind('/') + 1));
  w.set_namespace_(ns);
  w.set_network(network);
  w.set_tunnel_protocol(istio::workload::HBONE);
  for (const char* a : ips) w.add_addresses(ip(a).to_bytes());
  return w;
}

void add_service_ports(Workload& w, const std::string& key, std::vector<std::pair<unsigned, unsigned>> ports) {
  auto& list = (*w.mutable_services())[key];
  for (auto [sp, tp] : ports) {
    auto* p = list.add_ports();
    p->set_service_port(sp);
    p->set_target_port(tp);
  }
}

Service service(const std::string& ns, const std::string& host, std::vector<std::pair<std::string, const char*>> vips) {
  Service s;
  s.set_name(host.substr(0, host.find('.')));
  s.set_namespace_(ns);
  s.set_hostname(host);
  for (const auto& [net, vip] : vips) {
    auto* a = s.add_addresses();
    a->set_network(net);
    a->set_address(ip(vip).to_bytes());
  }
  auto* p = s.add_ports();
  p->set_service_port(80);
  p->set_target_port(8080);
  return s;
}

Authorization policy(const std::string& ns, const std::string& name, istio::security::Scope scope) {
  Authorization a;
  a.set_namespace_(ns);
  a.set_name(name);
  a.set_scope(scope);
  a.add_rules()->add_clauses()->add_matches()->add_destination_ports(8080);
  return a;
}

std::vector<std::string> keys(const std::vector<const Authorization*>& ps) {
  std::vector<std::string> out;
  for (const auto* p : ps) out.push_back(policy_key(*p));
  return out;
}

std::vector<std::string> uids(std::span<const Endpoint> eps) {
  std::vector<std::string> out;
  for (const auto& e : eps) out.push_back(e.workload->uid());
  return out;
}

}  // namespace

TEST_SUITE("common/state/snapshot") {
  TEST_CASE("workload and service indexes") {
    SnapshotBuilder b;
    REQUIRE(b.upsert(workload("c//Pod/ns1/a", "ns1", {"10.0.0.1", "fd00::1"})));
    REQUIRE(b.upsert(workload("c//Pod/ns1/remote", "ns1", {"10.0.0.1"}, "net2")));
    Workload host = workload("c//Pod/kube-system/hostnet", "kube-system", {"10.0.0.50"});
    host.set_network_mode(istio::workload::HOST_NETWORK);
    REQUIRE(b.upsert(host));
    REQUIRE(b.upsert(service("ns1", "svc.ns1.svc.cluster.local", {{"", "10.96.0.10"}, {"net2", "10.96.0.10"}})));
    REQUIRE(b.upsert(service("ns2", "svc.ns2.svc.cluster.local", {{"", "10.96.0.20"}})));
    auto snap = b.build();

    struct Row { const char* network; const char* ip; const char* uid; };
    for (const Row& row : {Row{"", "10.0.0.1", "c//Pod/ns1/a"}, Row{"", "fd00::1", "c//Pod/ns1/a"},
                           Row{"net2", "10.0.0.1", "c//Pod/ns1/remote"}, Row{"", "::ffff:10.0.0.1", "c//Pod/ns1/a"},
                           Row{"net3", "10.0.0.1", nullptr}, Row{"", "10.0.0.2", nullptr},
                           Row{"", "10.0.0.50", nullptr} /* HOST_NETWORK: not by IP */}) {
      CAPTURE(row.network);
      CAPTURE(row.ip);
      const Workload* w = snap->workload_by_ip(row.network, ip(row.ip));
      if (row.uid == nullptr) {
        CHECK(w == nullptr);
      } else {
        REQUIRE(w != nullptr);
        CHECK(w->uid() == row.uid);
      }
    }
    REQUIRE(snap->workload_by_uid("c//Pod/kube-system/hostnet") != nullptr);  // still by uid
    CHECK(snap->workload_by_uid("nope") == nullptr);

    const Service* s1 = snap->service_by_vip("", ip("10.96.0.10"));
    REQUIRE(s1 != nullptr);
    CHECK(s1->hostname() == "svc.ns1.svc.cluster.local");
    CHECK(snap->service_by_vip("net2", ip("10.96.0.10")) == s1);
    CHECK(snap->service_by_vip("net9", ip("10.96.0.10")) == nullptr);
    CHECK(snap->service_by_vip("", ip("10.96.0.20"))->namespace_() == "ns2");
    CHECK(snap->service_by_host("ns1", "svc.ns1.svc.cluster.local") == s1);
    CHECK(snap->service_by_host("ns2", "svc.ns1.svc.cluster.local") == nullptr);
    CHECK(snap->service_by_key("ns1/svc.ns1.svc.cluster.local") == s1);
    CHECK(snap->service_by_key("ns1/other") == nullptr);
  }

  TEST_CASE("address shared by several workloads: Pod over others, then HBONE, then smallest uid") {
    SnapshotBuilder b;
    Workload entry = workload("c/networking.istio.io/WorkloadEntry/ns/vm", "ns", {"10.1.0.1"});
    Workload pod_tcp = workload("c//Pod/ns/p-tcp", "ns", {"10.1.0.1"});
    pod_tcp.set_tunnel_protocol(istio::workload::NONE);
    Workload pod_hbone = workload("c//Pod/ns/p-hbone", "ns", {"10.1.0.1"});
    REQUIRE(b.upsert(entry));
    CHECK(b.build()->workload_by_ip("", ip("10.1.0.1"))->uid() == entry.uid());
    REQUIRE(b.upsert(pod_tcp));
    CHECK(b.build()->workload_by_ip("", ip("10.1.0.1"))->uid() == pod_tcp.uid());
    REQUIRE(b.upsert(pod_hbone));
    CHECK(b.build()->workload_by_ip("", ip("10.1.0.1"))->uid() == pod_hbone.uid());
    REQUIRE(b.upsert(workload("c//Pod/ns/a-first", "ns", {"10.1.0.1"})));
    CHECK(b.build()->workload_by_ip("", ip("10.1.0.1"))->uid() == "c//Pod/ns/a-first");
  }

  TEST_CASE("endpoints carry each workload's port map") {
    SnapshotBuilder b;
    Workload w2 = workload("c//Pod/ns1/w2", "ns1", {"10.0.0.2"});
    add_service_ports(w2, "ns1/svc.ns1.svc.cluster.local", {{80, 9090}});
    Workload w1 = workload("c//Pod/ns1/w1", "ns1", {"10.0.0.1"});
    add_service_ports(w1, "ns1/svc.ns1.svc.cluster.local", {{80, 8080}, {443, 8443}});
    add_service_ports(w1, "ns1/pending.ns1", {{81, 81}});
    Workload bare = workload("c//Pod/ns1/bare", "ns1", {"10.0.0.3"});
    (*bare.mutable_services())["ns1/svc.ns1.svc.cluster.local"];  // member without ports
    REQUIRE(b.upsert(w2));
    REQUIRE(b.upsert(w1));
    REQUIRE(b.upsert(bare));
    REQUIRE(b.upsert(workload("c//Pod/ns1/other", "ns1", {"10.0.0.4"})));
    REQUIRE(b.upsert(service("ns1", "svc.ns1.svc.cluster.local", {{"", "10.96.0.10"}})));
    auto snap = b.build();

    const Service* svc = snap->service_by_host("ns1", "svc.ns1.svc.cluster.local");
    REQUIRE(svc != nullptr);
    auto eps = snap->endpoints(*svc);
    CHECK(uids(eps) == std::vector<std::string>{"c//Pod/ns1/bare", "c//Pod/ns1/w1", "c//Pod/ns1/w2"});
    REQUIRE(eps.size() == 3);
    REQUIRE(eps[0].ports != nullptr);
    CHECK(eps[0].ports->ports_size() == 0);
    REQUIRE(eps[1].ports->ports_size() == 2);
    CHECK(eps[1].ports->ports(0).service_port() == 80);
    CHECK(eps[1].ports->ports(0).target_port() == 8080);
    CHECK(eps[1].ports->ports(1).target_port() == 8443);
    CHECK(eps[2].ports->ports(0).target_port() == 9090);
    // Workloads may name a service before it arrives.
    CHECK(uids(snap->endpoints("ns1", "pending.ns1")) == std::vector<std::string>{"c//Pod/ns1/w1"});
    CHECK(snap->endpoints("ns2", "svc.ns1.svc.cluster.local").empty());
  }

  TEST_CASE("policies_for: global + namespace + selected, unknown names skipped and reported") {
    SnapshotBuilder b;
    REQUIRE(b.upsert(policy("istio-system", "global-deny", istio::security::GLOBAL)));
    REQUIRE(b.upsert(policy("ns1", "ns1-allow", istio::security::NAMESPACE)));
    REQUIRE(b.upsert(policy("ns1", "a-ns1-deny", istio::security::NAMESPACE)));
    REQUIRE(b.upsert(policy("ns2", "ns2-allow", istio::security::NAMESPACE)));
    REQUIRE(b.upsert(policy("ns1", "selected", istio::security::WORKLOAD_SELECTOR)));
    REQUIRE(b.upsert(policy("ns1", "not-selected", istio::security::WORKLOAD_SELECTOR)));
    REQUIRE(b.upsert(policy("istio-system", "istio_converted_static_strict", istio::security::WORKLOAD_SELECTOR)));
    Workload a = workload("c//Pod/ns1/a", "ns1", {"10.0.0.1"});
    a.add_authorization_policies("ns1/selected");
    a.add_authorization_policies("ns1/missing");
    a.add_authorization_policies("istio-system/istio_converted_static_strict");
    a.add_authorization_policies("ns1/ns1-allow");  // already in by namespace: listed once
    REQUIRE(b.upsert(a));
    REQUIRE(b.upsert(workload("c//Pod/ns3/c", "ns3", {"10.0.0.3"})));
    auto snap = b.build();

    CHECK(keys(snap->policies_for(*snap->workload_by_uid("c//Pod/ns1/a"))) ==
          std::vector<std::string>{"istio-system/global-deny", "ns1/a-ns1-deny", "ns1/ns1-allow", "ns1/selected",
                                   "istio-system/istio_converted_static_strict"});
    CHECK(keys(snap->policies_for(*snap->workload_by_uid("c//Pod/ns3/c"))) ==
          std::vector<std::string>{"istio-system/global-deny"});
    CHECK(snap->warnings() == std::vector<std::string>{"workload c//Pod/ns1/a refers to unknown policy ns1/missing"});
    CHECK(snap->policy_by_key("ns2/ns2-allow") != nullptr);
    CHECK(snap->policy_by_key("ns2/none") == nullptr);

    // The missing policy arrives: the next snapshot applies it and has no warning.
    REQUIRE(b.upsert(policy("ns1", "missing", istio::security::WORKLOAD_SELECTOR)));
    auto next = b.build();
    CHECK(next->warnings().empty());
    CHECK(next->policies_for(*next->workload_by_uid("c//Pod/ns1/a")).size() == 6);
  }

  TEST_CASE("VIP clash: smallest key keeps the VIP, warning names both") {
    SnapshotBuilder b;
    REQUIRE(b.upsert(service("ns2", "b.example", {{"", "10.96.1.1"}})));
    REQUIRE(b.upsert(service("ns1", "a.example", {{"", "10.96.1.1"}})));
    auto snap = b.build();
    CHECK(snap->service_by_vip("", ip("10.96.1.1"))->hostname() == "a.example");
    REQUIRE(snap->warnings().size() == 1);
    CHECK(snap->warnings()[0].find("ns1/a.example and ns2/b.example") != std::string::npos);
  }

  TEST_CASE("builder: upsert replaces, remove drops, old snapshots stay intact") {
    SnapshotBuilder b;
    Workload a = workload("c//Pod/ns1/a", "ns1", {"10.0.0.1"});
    add_service_ports(a, "ns1/svc.ns1", {{80, 8080}});
    REQUIRE(b.upsert(a));
    istio::workload::Address addr;
    *addr.mutable_service() = service("ns1", "svc.ns1", {{"", "10.96.0.1"}});
    REQUIRE(b.upsert(addr));
    REQUIRE(b.upsert(policy("ns1", "p", istio::security::NAMESPACE)));
    auto s1 = b.build();
    CHECK(s1->version() == 1);
    const Workload* a1 = s1->workload_by_ip("", ip("10.0.0.1"));
    REQUIRE(a1 != nullptr);

    // Move the workload to a new IP, drop the service and the policy, add a workload.
    Workload moved = a;
    moved.clear_addresses();
    moved.add_addresses(ip("10.0.0.9").to_bytes());
    REQUIRE(b.upsert(moved));
    CHECK(b.remove_address("ns1/svc.ns1"));
    CHECK(b.remove_policy("ns1/p"));
    CHECK_FALSE(b.remove_policy("ns1/p"));
    CHECK_FALSE(b.remove_address("ns1/nothing"));
    REQUIRE(b.upsert(workload("c//Pod/ns1/b", "ns1", {"10.0.0.2"})));
    auto s2 = b.build();
    CHECK(s2->version() == 2);

    // s1 is unchanged.
    CHECK(s1->workload_by_ip("", ip("10.0.0.1")) == a1);
    CHECK(s1->workload_by_ip("", ip("10.0.0.9")) == nullptr);
    CHECK(s1->workload_by_uid("c//Pod/ns1/b") == nullptr);
    REQUIRE(s1->service_by_vip("", ip("10.96.0.1")) != nullptr);
    CHECK(s1->endpoints(*s1->service_by_vip("", ip("10.96.0.1"))).size() == 1);
    CHECK(s1->policies_for(*a1).size() == 1);
    CHECK(s1->workloads().size() == 1);
    // s2 sees the new state.
    CHECK(s2->workload_by_ip("", ip("10.0.0.1")) == nullptr);
    CHECK(s2->workload_by_ip("", ip("10.0.0.9"))->uid() == "c//Pod/ns1/a");
    CHECK(s2->service_by_vip("", ip("10.96.0.1")) == nullptr);
    CHECK(s2->policies_for(*s2->workload_by_uid("c//Pod/ns1/a")).empty());
    CHECK(s2->workloads().size() == 2);

    // Removing a workload by uid.
    CHECK(b.remove_address("c//Pod/ns1/b"));
    auto s3 = b.build();
    CHECK(s3->workload_by_uid("c//Pod/ns1/b") == nullptr);
    CHECK(s2->workload_by_uid("c//Pod/ns1/b") != nullptr);

    b.clear();
    CHECK(b.build()->workloads().empty());
    CHECK(s3->workloads().size() == 1);
  }

  TEST_CASE("builder: a refused upsert changes nothing; stored workloads carry defaults") {
    SnapshotBuilder b;
    Workload a = workload("c//Pod/ns1/a", "ns1", {"10.0.0.1"});
    REQUIRE(b.upsert(a));
    Workload bad = a;
    bad.add_addresses("xyz");
    auto r = b.upsert(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().context == "workload \"c//Pod/ns1/a\": addresses[1]: 3 bytes, want 4 (IPv4) or 16 (IPv6)");
    auto legacy = a;
    legacy.set_tunnel_protocol(istio::workload::LEGACY_ISTIO_MTLS);
    CHECK(b.upsert(legacy).error().kind == ErrorKind::Unsupported);
    CHECK_FALSE(b.upsert(istio::workload::Address{}));

    auto snap = b.build();
    const Workload* w = snap->workload_by_uid(a.uid());
    REQUIRE(w != nullptr);
    CHECK(w->addresses_size() == 1);
    CHECK(w->tunnel_protocol() == istio::workload::HBONE);
    CHECK(w->trust_domain() == "cluster.local");
    CHECK(w->service_account() == "default");
    CHECK(w->cluster_id() == "Kubernetes");
    CHECK(w->capacity().value() == 1);
    CHECK(b.workload_count() == 1);
  }

  TEST_CASE("empty snapshot") {
    auto e = Snapshot::empty();
    CHECK(e->version() == 0);
    CHECK(e->workload_by_ip("", ip("10.0.0.1")) == nullptr);
    CHECK(e->workloads().empty());
    CHECK(e->endpoints("ns", "h").empty());
  }
}
