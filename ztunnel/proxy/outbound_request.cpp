#include "ztunnel/proxy/outbound_request.h"

#include <algorithm>

namespace ambient::ztunnel {

namespace {

using istio::workload::GatewayAddress;
using istio::workload::LoadBalancing;
using istio::workload::WorkloadStatus;

bool is_loopback(const state::IpAddr& ip) {
  const state::IpAddr c = ip.canonical();
  const auto b = c.bytes();
  if (c.is_v4()) return b[0] == 127;
  return std::all_of(b.begin(), b.end() - 1, [](std::uint8_t x) { return x == 0; }) && b[15] == 1;
}

// First address of `w` (ztunnel prefers the requested family; local config workloads have one family).
std::optional<state::IpAddr> workload_ip(const state::Workload& w, const state::IpAddr* prefer = nullptr) {
  std::optional<state::IpAddr> first;
  for (const auto& raw : w.addresses()) {
    auto ip = state::IpAddr::from_bytes(raw);
    if (!ip) continue;
    if (prefer && ip->canonical() == prefer->canonical()) return ip;
    if (!first || (prefer && ip->is_v4() == prefer->is_v4() && first->is_v4() != prefer->is_v4())) first = ip;
  }
  return first;
}

bool on_network(const state::Workload& w, std::string_view network) { return w.network() == network; }

bool is_self(const state::Workload& source, const state::Workload* candidate) {
  return candidate != nullptr && candidate->uid() == source.uid();
}

struct Picked {
  const state::Workload* workload;
  state::IpAddr ip;
  std::uint16_t port;
};

// Weighted random choice by capacity among usable endpoints of `svc` for `service_port`.
std::optional<Picked> pick_endpoint(const state::Snapshot& snap, const state::Service& svc, std::uint16_t service_port,
                                    const OutboundContext& ctx) {
  const bool allow_unhealthy = svc.load_balancing().health_policy() == LoadBalancing::ALLOW_ALL;
  std::vector<Picked> candidates;
  std::vector<std::uint64_t> weights;
  for (const auto& ep : snap.endpoints(svc)) {
    const auto& w = *ep.workload;
    if (!allow_unhealthy && w.status() != istio::workload::HEALTHY) continue;
    if (!on_network(w, ctx.network)) continue;
    auto ip = workload_ip(w);
    if (!ip) continue;
    const std::uint16_t port = state::endpoint_target_port(svc, ep, service_port);
    if (port == 0) continue;
    candidates.push_back({&w, *ip, port});
    weights.push_back(state::workload_capacity(w));
  }
  if (candidates.empty()) return std::nullopt;
  std::uint64_t total = 0;
  for (auto wgt : weights) total += wgt;
  if (total == 0) return candidates[ctx.random() % candidates.size()];
  std::uint64_t r = ctx.random() % total;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    if (r < weights[i]) return candidates[i];
    r -= weights[i];
  }
  return candidates.back();
}

// Resolves a GatewayAddress (waypoint) to a workload and its HBONE address.
Result<OutboundRequest> to_waypoint(const state::Snapshot& snap, const GatewayAddress& gw, const SocketAddr& original,
                                    const OutboundContext& ctx) {
  OutboundRequest req;
  req.protocol = Protocol::Hbone;
  req.authority = original.to_string();  // the waypoint sees the original destination
  const std::uint16_t port = gw.hbone_mtls_port() != 0 ? static_cast<std::uint16_t>(gw.hbone_mtls_port()) : ctx.hbone_port;
  if (gw.has_address()) {
    auto ip = state::IpAddr::from_bytes(gw.address().address());
    if (!ip) return errorf(ErrorKind::InvalidArgument, "waypoint address has {} bytes", gw.address().address().size());
    req.next_hop = {*ip, port};
    req.waypoint = snap.workload_by_ip(gw.address().network(), *ip);
    if (req.waypoint == nullptr)
      return errorf(ErrorKind::NotFound, "waypoint {} is not a known workload (its identity is needed)", ip->to_string());
    req.upstream_sans.push_back(state::workload_identity(*req.waypoint));
    return req;
  }
  if (gw.has_hostname()) {
    const auto* svc = snap.service_by_host(gw.hostname().namespace_(), gw.hostname().hostname());
    if (svc == nullptr)
      return errorf(ErrorKind::NotFound, "waypoint service {}/{} is unknown", gw.hostname().namespace_(), gw.hostname().hostname());
    // Any endpoint of the waypoint service, on its HBONE port.
    std::vector<const state::Workload*> usable;
    for (const auto& ep : snap.endpoints(*svc))
      if (ep.workload->status() == istio::workload::HEALTHY && on_network(*ep.workload, ctx.network) && workload_ip(*ep.workload))
        usable.push_back(ep.workload);
    if (usable.empty())
      return errorf(ErrorKind::NotFound, "waypoint service {}/{} has no healthy endpoint", gw.hostname().namespace_(), gw.hostname().hostname());
    req.waypoint = usable[ctx.random() % usable.size()];
    req.next_hop = {*workload_ip(*req.waypoint), port};
    req.upstream_sans.push_back(state::workload_identity(*req.waypoint));
    for (const auto& san : svc->subject_alt_names()) req.upstream_sans.push_back(san);
    return req;
  }
  return errorf(ErrorKind::InvalidArgument, "waypoint has neither an address nor a hostname");
}

// True if `source` is (one of the workloads behind) the waypoint `gw`: traffic from a waypoint must not be
// sent back to it (sandwich loop).
bool source_is_waypoint(const state::Snapshot& snap, const state::Workload& source, const GatewayAddress& gw) {
  if (gw.has_address()) {
    auto ip = state::IpAddr::from_bytes(gw.address().address());
    return ip && is_self(source, snap.workload_by_ip(gw.address().network(), *ip));
  }
  if (gw.has_hostname())
    for (const auto& ep : snap.endpoints(gw.hostname().namespace_(), gw.hostname().hostname()))
      if (is_self(source, ep.workload)) return true;
  return false;
}

}  // namespace

std::string SocketAddr::to_string() const {
  if (ip.is_v6()) return "[" + ip.to_string() + "]:" + std::to_string(port);
  return ip.to_string() + ":" + std::to_string(port);
}

Result<OutboundRequest> build_outbound_request(const state::Snapshot& snap, const state::Workload& source,
                                               const SocketAddr& dst, const OutboundContext& ctx) {
  if (is_loopback(dst.ip) && std::find(ctx.own_ports.begin(), ctx.own_ports.end(), dst.port) != ctx.own_ports.end())
    return errorf(ErrorKind::PolicyDenied, "self call to ztunnel's own port {} refused", dst.to_string());

  const state::Service* svc = snap.service_by_vip(ctx.network, dst.ip);
  const state::Workload* target = nullptr;
  state::IpAddr target_ip;
  std::uint16_t port = dst.port;

  if (svc != nullptr) {
    if (svc->has_waypoint() && !source_is_waypoint(snap, source, svc->waypoint())) {
      auto req = to_waypoint(snap, svc->waypoint(), dst, ctx);
      if (req) req->destination_service = svc;
      return req;
    }
    if (svc->load_balancing().mode() == LoadBalancing::PASSTHROUGH) {
      OutboundRequest req;
      req.next_hop = dst;
      req.destination_service = svc;
      req.passthrough = true;
      return req;
    }
    auto picked = pick_endpoint(snap, *svc, dst.port, ctx);
    if (!picked)
      return errorf(ErrorKind::NotFound, "no healthy upstream for service {}/{} port {}", svc->namespace_(), svc->hostname(), dst.port);
    target = picked->workload;
    target_ip = picked->ip;
    port = picked->port;
  } else {
    target = snap.workload_by_ip(ctx.network, dst.ip);
    if (target == nullptr) {
      OutboundRequest req;
      req.next_hop = dst;
      req.passthrough = true;
      return req;
    }
    target_ip = dst.ip;
  }

  if (svc == nullptr && target->has_waypoint() && !source_is_waypoint(snap, source, target->waypoint())) {
    auto req = to_waypoint(snap, target->waypoint(), dst, ctx);
    if (req) req->destination_workload = target;
    return req;
  }

  OutboundRequest req;
  req.destination_workload = target;
  req.destination_service = svc;
  if (target->tunnel_protocol() == istio::workload::HBONE) {
    req.protocol = Protocol::Hbone;
    req.next_hop = {target_ip, ctx.hbone_port};
    req.authority = SocketAddr{target_ip, port}.to_string();
    req.upstream_sans.push_back(state::workload_identity(*target));
    if (svc != nullptr)
      for (const auto& san : svc->subject_alt_names()) req.upstream_sans.push_back(san);
  } else {
    req.protocol = Protocol::Tcp;
    req.next_hop = {target_ip, port};
  }
  return req;
}

}  // namespace ambient::ztunnel
