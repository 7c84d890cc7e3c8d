#pragma once
// Snapshot: the immutable view of mesh state (workloads, services, authorization policies) that the
// control thread builds (SnapshotBuilder) and posts to every data-plane worker as
// shared_ptr<const Snapshot>. Workers only read it; it holds no locks and never changes.
//
// Invariants:
//  - Every resource passed validation (resource.h) before it got here; workloads have defaults applied.
//  - Each resource is a shared_ptr<const T> shared with the builder and with older snapshots; a
//    later upsert replaces the pointer in the builder, never the object, so pointers returned by
//    queries stay valid exactly as long as the Snapshot they came from.
//  - Indexes hold string_views into those immutable objects: lookups do not allocate.
//
// Index semantics (ztunnel's, reference ztunnel.md 3.8, 4.5 and 7):
//  - workload by (network, IP): every address of every workload except HOST_NETWORK ones. When
//    several workloads claim one address, the winner is ztunnel's pick: a Pod (uid contains
//    "//Pod/") over other kinds, then HBONE over TCP, then (ours, for determinism) the smallest uid.
//  - service by (network, VIP): every Service address; on a clash the smallest "ns/hostname" wins
//    and the clash is reported in warnings().
//  - endpoints of a service: workloads whose `services` map has the key "namespace/hostname", with
//    that entry's PortList, sorted by uid. All of them, healthy or not: load balancing filters.
//  - policies: keyed "namespace/name". GLOBAL-scope policies apply to every workload, whatever
//    namespace they were written in (istiod puts them in the root namespace); NAMESPACE-scope ones
//    to workloads of that namespace; WORKLOAD_SELECTOR ones only through Workload.authorization_policies.
//
// Limits: build() copies the maps of pointers and rebuilds every index, O(n) per snapshot. Fine for
// local config and small clusters; xDS-scale churn may later need persistent (structurally shared)
// maps so that a push costs O(changes).

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/state/ip_addr.h"
#include "common/state/resource.h"

namespace ambient::state {

using istio::workload::PortList;

// One endpoint of a service: the workload and its service->target port map for that service
// (ports may be null when the workload lists the service without ports).
struct Endpoint {
  const Workload* workload = nullptr;
  const PortList* ports = nullptr;
};

// The target port of `ep` for `service_port`: the endpoint's own service -> target map first, then
// Service.ports. 0 = no usable mapping (an unknown port, or a named port that cannot be resolved).
std::uint16_t endpoint_target_port(const Service& svc, const Endpoint& ep, std::uint16_t service_port);

template <typename T>
using ResourceMap = std::map<std::string, std::shared_ptr<const T>, std::less<>>;  // sorted by key

class Snapshot {
  struct Token {};  // only SnapshotBuilder constructs snapshots

 public:
  Snapshot(Token, std::uint64_t version, ResourceMap<Workload> workloads, ResourceMap<Service> services,
           ResourceMap<Authorization> policies);
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  // An empty snapshot (version 0), for workers before the first config arrives.
  static std::shared_ptr<const Snapshot> empty();

  // Increases by one on every SnapshotBuilder::build() of the same builder.
  std::uint64_t version() const noexcept { return version_; }

  const Workload* workload_by_uid(std::string_view uid) const noexcept;
  // `ip` is canonicalized (IPv4-mapped IPv6 finds the IPv4 workload).
  const Workload* workload_by_ip(std::string_view network, const IpAddr& ip) const noexcept;
  const Service* service_by_vip(std::string_view network, const IpAddr& vip) const noexcept;
  const Service* service_by_host(std::string_view ns, std::string_view hostname) const noexcept;
  // "namespace/hostname", the xDS resource name.
  const Service* service_by_key(std::string_view key) const noexcept;
  // "namespace/name".
  const Authorization* policy_by_key(std::string_view key) const noexcept;

  // Valid while this snapshot lives. Empty for unknown services.
  std::span<const Endpoint> endpoints(const Service& s) const noexcept;
  // Also for services the snapshot does not (yet) hold: workloads may arrive before their service.
  std::span<const Endpoint> endpoints(std::string_view ns, std::string_view hostname) const noexcept;

  // Policies that apply to `w`: GLOBAL ones, then NAMESPACE ones of w's namespace (each group sorted
  // by key), then w.authorization_policies in order. No duplicates; unknown names are skipped (they
  // are listed in warnings()).
  std::vector<const Authorization*> policies_for(const Workload& w) const;

  // Iteration (sorted by key) for /config_dump and for consumers that scan.
  const ResourceMap<Workload>& workloads() const noexcept { return workloads_; }
  const ResourceMap<Service>& services() const noexcept { return services_; }
  const ResourceMap<Authorization>& policies() const noexcept { return policies_; }

  // Inconsistencies that do not make a resource invalid on its own (unknown policy names, VIP clashes),
  // one human-readable line each, sorted. The builder logs each new one once.
  const std::vector<std::string>& warnings() const noexcept { return warnings_; }

 private:
  friend class SnapshotBuilder;

  // (network, IP) and (namespace, hostname) keys viewing strings owned by the resources.
  struct NetIp {
    std::string_view network;
    IpAddr ip;
    bool operator==(const NetIp&) const = default;
  };
  struct NetIpHash {
    std::size_t operator()(const NetIp& k) const noexcept;
  };
  using NsHost = std::pair<std::string_view, std::string_view>;
  struct NsHostHash {
    std::size_t operator()(const NsHost& k) const noexcept;
  };

  void index();

  std::uint64_t version_ = 0;
  ResourceMap<Workload> workloads_;
  ResourceMap<Service> services_;
  ResourceMap<Authorization> policies_;

  std::unordered_map<std::string_view, const Workload*> by_uid_;
  std::unordered_map<NetIp, const Workload*, NetIpHash> workload_by_ip_;
  std::unordered_map<NetIp, const Service*, NetIpHash> service_by_vip_;
  std::unordered_map<NsHost, const Service*, NsHostHash> service_by_host_;
  std::unordered_map<NsHost, std::vector<Endpoint>, NsHostHash> endpoints_;
  std::vector<const Authorization*> global_policies_;
  std::unordered_map<std::string_view, std::vector<const Authorization*>> namespace_policies_;
  std::vector<std::string> warnings_;
};

}  // namespace ambient::state
