#include "waypoint/proxy/endpoint_picker.h"

#include <algorithm>
#include <vector>

#include "common/state/ip_asio.h"
#include "common/state/resource.h"

namespace ambient::waypoint {

namespace {



std::optional<state::IpAddr> first_ip(const state::Workload& w) {
  for (const auto& raw : w.addresses())
    if (auto ip = state::IpAddr::from_bytes(raw)) return ip;
  return std::nullopt;
}

UpstreamTarget make_target(const state::Workload& w, const state::IpAddr& ip, std::uint16_t port) {
  UpstreamTarget t;
  t.workload = &w;
  t.address = {state::to_asio(ip), port};
  t.hbone = w.tunnel_protocol() == istio::workload::HBONE;
  t.identity = state::workload_identity(w);
  return t;
}

}  // namespace

std::string UpstreamTarget::authority() const {
  const auto a = address.address();
  return a.is_v6() ? "[" + a.to_string() + "]:" + std::to_string(address.port()) : a.to_string() + ":" + std::to_string(address.port());
}

std::uint64_t EndpointPicker::random() noexcept {
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return rng_ * 2685821657736338717ull;
}

void EndpointPicker::finished(const std::string& uid) {
  const auto it = active_.find(uid);
  if (it == active_.end()) return;
  if (--it->second == 0) active_.erase(it);
}

std::optional<UpstreamTarget> EndpointPicker::direct(const state::Workload& workload, std::uint16_t port) {
  const auto ip = first_ip(workload);
  if (!ip) return std::nullopt;
  return make_target(workload, *ip, port);
}

std::optional<UpstreamTarget> EndpointPicker::pick(const state::Snapshot& snap, const state::Service& svc, std::uint16_t service_port,
                                                   std::string_view network, std::span<const std::string> exclude) {
  const bool allow_unhealthy = svc.load_balancing().health_policy() == istio::workload::LoadBalancing::ALLOW_ALL;
  struct Candidate {
    const state::Workload* w;
    state::IpAddr ip;
    std::uint16_t port;
  };
  std::vector<Candidate> all, fresh;
  for (const auto& ep : snap.endpoints(svc)) {
    const auto& w = *ep.workload;
    if (!allow_unhealthy && w.status() != istio::workload::HEALTHY) continue;
    if (w.network() != network) continue;
    const auto ip = first_ip(w);
    const std::uint16_t port = state::endpoint_target_port(svc, ep, service_port);
    if (!ip || port == 0) continue;
    all.push_back({&w, *ip, port});
    if (std::find(exclude.begin(), exclude.end(), w.uid()) == exclude.end()) fresh.push_back(all.back());
  }
  const auto& c = fresh.empty() ? all : fresh;
  if (c.empty()) return std::nullopt;
  std::size_t chosen = 0;
  switch (mode_) {
    case waypoint::LoadBalancing::RoundRobin: {
      auto& cur = cursor_[state::service_key(svc)];
      chosen = cur++ % c.size();
      break;
    }
    case waypoint::LoadBalancing::Random: {
      std::uint64_t total = 0;
      for (const auto& x : c) total += state::workload_capacity(*x.w);
      std::uint64_t r = total == 0 ? 0 : random() % total;
      for (std::size_t i = 0; i < c.size(); ++i) {
        const std::uint64_t cap = state::workload_capacity(*c[i].w);
        if (r < cap) {
          chosen = i;
          break;
        }
        r -= cap;
      }
      break;
    }
    case waypoint::LoadBalancing::LeastRequest: {
      if (c.size() == 1) break;
      // Power of two choices on active / capacity (compared as active_a * cap_b < active_b * cap_a).
      const std::size_t a = random() % c.size();
      std::size_t b = random() % (c.size() - 1);
      if (b >= a) ++b;
      auto load = [&](std::size_t i) -> std::uint64_t {
        const auto it = active_.find(c[i].w->uid());
        return it == active_.end() ? 0 : it->second;
      };
      const std::uint64_t la = load(a) * std::max<std::uint32_t>(1, state::workload_capacity(*c[b].w));
      const std::uint64_t lb = load(b) * std::max<std::uint32_t>(1, state::workload_capacity(*c[a].w));
      chosen = lb < la ? b : a;
      break;
    }
  }
  return make_target(*c[chosen].w, c[chosen].ip, c[chosen].port);
}

}  // namespace ambient::waypoint
