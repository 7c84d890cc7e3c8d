#include "common/state/snapshot.h"

#include <algorithm>
#include <functional>

#include <fmt/format.h>

namespace ambient::state {
namespace {

// ztunnel's rank when several workloads share an address: Pod objects (not spoofable, most likely
// what is really behind the address) over others, then HBONE (in the mesh) over TCP.
int address_rank(const Workload& w) {
  const bool pod = w.uid().find("//Pod/") != std::string::npos;
  const bool hbone = w.tunnel_protocol() == istio::workload::HBONE;
  return (pod ? 2 : 0) + (hbone ? 1 : 0);
}

bool better_owner(const Workload& a, const Workload& b) {
  const int ra = address_rank(a);
  const int rb = address_rank(b);
  return ra != rb ? ra > rb : a.uid() < b.uid();
}

std::size_t mix(std::size_t h, std::size_t v) { return h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2)); }

}  // namespace

std::size_t Snapshot::NetIpHash::operator()(const NetIp& k) const noexcept {
  return mix(std::hash<std::string_view>{}(k.network), std::hash<IpAddr>{}(k.ip));
}

std::size_t Snapshot::NsHostHash::operator()(const NsHost& k) const noexcept {
  return mix(std::hash<std::string_view>{}(k.first), std::hash<std::string_view>{}(k.second));
}

Snapshot::Snapshot(Token, std::uint64_t version, ResourceMap<Workload> workloads, ResourceMap<Service> services,
                   ResourceMap<Authorization> policies)
    : version_(version), workloads_(std::move(workloads)), services_(std::move(services)),
      policies_(std::move(policies)) {
  index();
}

std::shared_ptr<const Snapshot> Snapshot::empty() {
  return std::make_shared<const Snapshot>(Token{}, 0, ResourceMap<Workload>{}, ResourceMap<Service>{},
                                          ResourceMap<Authorization>{});
}

void Snapshot::index() {
  by_uid_.reserve(workloads_.size());
  for (const auto& [uid, w] : workloads_) {
    by_uid_.emplace(uid, w.get());
    if (w->network_mode() != istio::workload::HOST_NETWORK) {
      for (const std::string& bytes : w->addresses()) {
        auto ip = IpAddr::from_bytes(bytes);
        if (!ip) continue;  // validated; defensive
        auto [it, inserted] = workload_by_ip_.emplace(NetIp{w->network(), ip->canonical()}, w.get());
        if (!inserted && better_owner(*w, *it->second)) it->second = w.get();
      }
    }
    for (const auto& [key, ports] : w->services()) {
      auto nh = split_namespaced_host(key);
      if (!nh) continue;  // validated; defensive
      endpoints_[*nh].push_back(Endpoint{w.get(), &ports});
    }
  }
  // Workloads were visited in uid order, so every endpoint list is already sorted by uid.

  for (const auto& [key, s] : services_) {
    service_by_host_.emplace(NsHost{s->namespace_(), s->hostname()}, s.get());
    for (const auto& a : s->addresses()) {
      auto ip = IpAddr::from_bytes(a.address());
      if (!ip) continue;
      auto [it, inserted] = service_by_vip_.emplace(NetIp{a.network(), ip->canonical()}, s.get());
      if (!inserted && it->second != s.get()) {
        // Services are visited in key order: the first (smallest key) keeps the VIP.
        warnings_.push_back(fmt::format("VIP {}/{} is claimed by services {} and {}; using {}", a.network(),
                                        ip->to_string(), service_key(*it->second), key, service_key(*it->second)));
      }
    }
  }

  for (const auto& [key, p] : policies_) {
    switch (p->scope()) {
      case istio::security::GLOBAL: global_policies_.push_back(p.get()); break;
      case istio::security::NAMESPACE: namespace_policies_[p->namespace_()].push_back(p.get()); break;
      default: break;  // WORKLOAD_SELECTOR: only by name
    }
  }

  for (const auto& [uid, w] : workloads_) {
    for (const std::string& name : w->authorization_policies()) {
      if (policies_.find(name) == policies_.end()) {
        warnings_.push_back(fmt::format("workload {} refers to unknown policy {}", uid, name));
      }
    }
  }
  std::sort(warnings_.begin(), warnings_.end());
}

const Workload* Snapshot::workload_by_uid(std::string_view uid) const noexcept {
  auto it = by_uid_.find(uid);
  return it == by_uid_.end() ? nullptr : it->second;
}

const Workload* Snapshot::workload_by_ip(std::string_view network, const IpAddr& ip) const noexcept {
  auto it = workload_by_ip_.find(NetIp{network, ip.canonical()});
  return it == workload_by_ip_.end() ? nullptr : it->second;
}

const Service* Snapshot::service_by_vip(std::string_view network, const IpAddr& vip) const noexcept {
  auto it = service_by_vip_.find(NetIp{network, vip.canonical()});
  return it == service_by_vip_.end() ? nullptr : it->second;
}

const Service* Snapshot::service_by_host(std::string_view ns, std::string_view hostname) const noexcept {
  auto it = service_by_host_.find(NsHost{ns, hostname});
  return it == service_by_host_.end() ? nullptr : it->second;
}

const Service* Snapshot::service_by_key(std::string_view key) const noexcept {
  auto it = services_.find(key);
  return it == services_.end() ? nullptr : it->second.get();
}

const Authorization* Snapshot::policy_by_key(std::string_view key) const noexcept {
  auto it = policies_.find(key);
  return it == policies_.end() ? nullptr : it->second.get();
}

std::span<const Endpoint> Snapshot::endpoints(const Service& s) const noexcept {
  return endpoints(s.namespace_(), s.hostname());
}

std::span<const Endpoint> Snapshot::endpoints(std::string_view ns, std::string_view hostname) const noexcept {
  auto it = endpoints_.find(NsHost{ns, hostname});
  if (it == endpoints_.end()) return {};
  return it->second;
}

std::vector<const Authorization*> Snapshot::policies_for(const Workload& w) const {
  std::vector<const Authorization*> out = global_policies_;
  if (auto it = namespace_policies_.find(w.namespace_()); it != namespace_policies_.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
  }
  for (const std::string& name : w.authorization_policies()) {
    const Authorization* p = policy_by_key(name);
    if (p != nullptr && std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

std::uint16_t endpoint_target_port(const Service& svc, const Endpoint& ep, std::uint16_t service_port) {
  if (ep.ports != nullptr)
    for (const auto& p : ep.ports->ports())
      if (p.service_port() == service_port && p.target_port() != 0) return static_cast<std::uint16_t>(p.target_port());
  for (const auto& p : svc.ports())
    if (p.service_port() == service_port) return static_cast<std::uint16_t>(p.target_port());
  return 0;
}

}  // namespace ambient::state
