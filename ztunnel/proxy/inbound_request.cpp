#include "ztunnel/proxy/inbound_request.h"

#include <algorithm>
#include <charconv>

namespace ambient::ztunnel {

namespace {

InboundRequest refuse(int status, std::string reason) {
  InboundRequest r;
  r.status = status;
  r.reason = std::move(reason);
  return r;
}

bool gateway_points_to(const state::Snapshot& snap, const istio::workload::GatewayAddress& gw, const state::Workload& local) {
  if (gw.has_address()) {
    auto ip = state::IpAddr::from_bytes(gw.address().address());
    const auto* w = ip ? snap.workload_by_ip(gw.address().network(), *ip) : nullptr;
    return w != nullptr && w->uid() == local.uid();
  }
  if (gw.has_hostname())
    for (const auto& ep : snap.endpoints(gw.hostname().namespace_(), gw.hostname().hostname()))
      if (ep.workload->uid() == local.uid()) return true;
  return false;
}

// True if `local` is the waypoint of whatever `ip` addresses (a service VIP or a workload).
bool is_waypoint_for(const state::Snapshot& snap, const state::Workload& local, const state::IpAddr& ip, std::string_view network) {
  if (const auto* svc = snap.service_by_vip(network, ip); svc != nullptr && svc->has_waypoint())
    return gateway_points_to(snap, svc->waypoint(), local);
  if (const auto* w = snap.workload_by_ip(network, ip); w != nullptr && w->has_waypoint())
    return gateway_points_to(snap, w->waypoint(), local);
  return false;
}

}  // namespace

std::optional<Authority> parse_authority(std::string_view text) {
  Authority a;
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    auto ip = state::IpAddr::parse(host);
    if (!ip || !ip->is_v6()) return std::nullopt;
    a.ip = ip;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // bare IPv6 needs brackets
    if (auto ip = state::IpAddr::parse(host)) {
      a.ip = ip;
    } else {
      const bool ok = std::all_of(host.begin(), host.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
      });
      if (!ok || host.size() > 253) return std::nullopt;
      a.host = std::string(host);
    }
  }
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || port.empty() || value == 0 || value > 65535) return std::nullopt;
  a.port = static_cast<std::uint16_t>(value);
  return a;
}

InboundRequest build_inbound_request(const state::Snapshot& snap, std::string_view method, std::string_view authority,
                                     const state::IpAddr& connection_destination, const InboundContext& ctx) {
  if (method != "CONNECT") return refuse(400, "method " + std::string(method) + " is not CONNECT");
  auto auth = parse_authority(authority);
  if (!auth) return refuse(400, "bad :authority '" + std::string(authority) + "'");
  const auto* local = snap.workload_by_ip(ctx.network, connection_destination);
  if (local == nullptr) return refuse(503, "no workload is known at " + connection_destination.to_string());

  InboundRequest r;
  r.workload = local;
  std::uint16_t port = auth->port;
  if (auth->ip) {
    if (auth->ip->canonical() != connection_destination.canonical() && !local->has_application_tunnel() &&
        !is_waypoint_for(snap, *local, *auth->ip, ctx.network))
      return refuse(400, "IP mismatch: :authority " + std::string(authority) + " is not this workload (" +
                             connection_destination.to_string() + ")");
  } else {
    // "host:port": a service of which the local workload is an endpoint.
    const state::Service* svc = nullptr;
    for (const auto& [key, s] : snap.services())
      if (s->hostname() == auth->host) {
        for (const auto& ep : snap.endpoints(*s))
          if (ep.workload->uid() == local->uid()) svc = s.get();
        if (svc != nullptr) break;
      }
    if (svc == nullptr) return refuse(503, "service " + auth->host + " has no endpoint here");
    r.service = svc;
    std::uint16_t target = 0;
    for (const auto& ep : snap.endpoints(*svc))
      if (ep.workload->uid() == local->uid() && ep.ports != nullptr)
        for (const auto& p : ep.ports->ports())
          if (p.service_port() == auth->port && p.target_port() != 0) target = static_cast<std::uint16_t>(p.target_port());
    if (target == 0)
      for (const auto& p : svc->ports())
        if (p.service_port() == auth->port) target = static_cast<std::uint16_t>(p.target_port());
    if (target == 0) return refuse(503, "service " + auth->host + " has no target port for " + std::to_string(auth->port));
    port = target;
  }
  if (local->has_application_tunnel() && local->application_tunnel().port() != 0)
    port = static_cast<std::uint16_t>(local->application_tunnel().port());
  if (std::find(ctx.own_ports.begin(), ctx.own_ports.end(), port) != ctx.own_ports.end())
    return refuse(503, "target port " + std::to_string(port) + " is one of ztunnel's own ports");
  r.upstream = {connection_destination, port};
  return r;
}

}  // namespace ambient::ztunnel
