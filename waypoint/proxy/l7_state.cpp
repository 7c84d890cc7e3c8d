#include "waypoint/proxy/l7_state.h"

#include <charconv>

#include <fmt/format.h>

#include "common/state/resource.h"

namespace ambient::waypoint {

namespace {

std::string_view app_protocol_name(istio::workload::AppProtocol p) {
  switch (p) {
    case istio::workload::HTTP11: return "HTTP";
    case istio::workload::HTTP2: return "HTTP2";
    case istio::workload::GRPC: return "GRPC";
    case istio::workload::TCP: return "TCP";
    case istio::workload::TLS: return "TLS";
    default: return "";
  }
}

struct HostPort {
  std::string_view host;
  std::uint16_t port = 0;
};

std::optional<HostPort> split_authority(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535 || host.empty()) return std::nullopt;
  return HostPort{host, static_cast<std::uint16_t>(value)};
}

bool targets_service(const AttachedPolicy& p, const state::Service& s) {
  for (const auto& t : p.targets)
    if (t.kind == "Service" && t.name == s.name() && p.policy.ns == s.namespace_()) return true;
  return false;
}

bool targets_gateway(const AttachedPolicy& p, const WaypointSelf& self) {
  for (const auto& t : p.targets)
    if (t.kind == "Gateway" && t.name == self.gateway && p.policy.ns == self.ns) return true;
  return false;
}

}  // namespace

Result<std::shared_ptr<const L7State>> L7State::build(std::shared_ptr<const state::Snapshot> snapshot,
                                                      std::shared_ptr<const WaypointConfig> config, WaypointSelf self) {
  auto st = std::make_shared<L7State>();
  st->snapshot_ = std::move(snapshot);
  st->config_ = std::move(config);
  st->self_ = std::move(self);
  for (const auto& p : st->config_->policies)
    if (targets_gateway(p, st->self_)) st->gateway_policies_.push_back(p.policy);
  for (const auto& [key, svc] : st->snapshot_->services()) {
    const state::Service& s = *svc;
    if (!s.name().empty()) st->by_name_.emplace(s.namespace_() + "/" + s.name(), &s);
    ServiceEntry entry;
    entry.policies = st->gateway_policies_;
    for (const auto& p : st->config_->policies)
      if (targets_service(p, s)) entry.policies.push_back(p.policy);
    // Per service port: every route with a parentRef naming this service (and this port, if it names one).
    for (const auto& port : s.ports()) {
      const auto sp = static_cast<std::uint16_t>(port.service_port());
      std::vector<HttpRoute> attached;
      for (const auto& r : st->config_->routes)
        for (const auto& parent : r.parents) {
          const std::string& pns = parent.ns.empty() ? r.ns : parent.ns;
          if (parent.kind != "Service" || parent.name != s.name() || pns != s.namespace_()) continue;
          if (parent.port && *parent.port != sp) continue;
          attached.push_back(r);
          break;
        }
      if (attached.empty()) continue;
      auto table = RouteTable::build(std::move(attached));
      if (!table) return errorf(table.error().kind, "routes of service {}/{} port {}: {}", s.namespace_(), s.name(), sp, table.error().context);
      entry.by_port.emplace(sp, std::move(*table));
    }
    st->services_.emplace(&s, std::move(entry));
  }
  return std::shared_ptr<const L7State>(std::move(st));
}

Result<Destination> L7State::resolve(std::string_view authority) const {
  const auto hp = split_authority(authority);
  if (!hp) return errorf(ErrorKind::InvalidArgument, "bad :authority '{}' (want ip:port)", authority);
  const auto ip = state::IpAddr::parse(hp->host);
  if (!ip) return errorf(ErrorKind::InvalidArgument, ":authority '{}' is not an IP address and port", authority);
  Destination d;
  d.port = hp->port;
  if (const auto* svc = snapshot_->service_by_vip(self_.network, *ip)) {
    bool has_port = false;
    for (const auto& p : svc->ports())
      if (p.service_port() == hp->port) {
        has_port = true;
        d.app_protocol = std::string(app_protocol_name(p.app_protocol()));
      }
    if (!has_port) return errorf(ErrorKind::NotFound, "service {} has no port {}", svc->hostname(), hp->port);
    d.service = svc;
    return d;
  }
  if (const auto* w = snapshot_->workload_by_ip(self_.network, *ip)) {
    d.workload = w;
    return d;
  }
  return errorf(ErrorKind::NotFound, "{} is neither a known service VIP nor a workload", ip->to_string());
}

const RouteTable* L7State::routes(const state::Service& service, std::uint16_t port) const {
  const auto it = services_.find(&service);
  if (it == services_.end()) return nullptr;
  const auto t = it->second.by_port.find(port);
  return t == it->second.by_port.end() ? nullptr : &t->second;
}

std::span<const L7Policy> L7State::policies(const Destination& dst) const {
  if (dst.service != nullptr) {
    const auto it = services_.find(dst.service);
    if (it != services_.end()) return it->second.policies;
  }
  return gateway_policies_;
}

const state::Service* L7State::service_by_name(std::string_view ns, std::string_view name) const {
  const auto it = by_name_.find(fmt::format("{}/{}", ns, name));
  return it == by_name_.end() ? nullptr : it->second;
}

RequestDecision L7State::decide(const Destination& dst, const RequestView& view, const L7Request& authz_request,
                                std::uint64_t random) const {
  RequestDecision d;
  d.authz = evaluate(policies(dst), authz_request);
  if (!d.authz.allowed) {
    d.kind = RequestDecision::Kind::Deny;
    d.reason = d.authz.policy.empty() ? std::string("no ALLOW policy matched") : "denied by " + d.authz.policy;
    return d;
  }
  d.service = dst.service;
  d.workload = dst.workload;
  d.port = dst.port;
  if (dst.service == nullptr) return d;  // direct to a workload: no routes
  const RouteTable* table = routes(*dst.service, dst.port);
  if (table == nullptr) return d;  // no route attached: the original service
  const auto sel = table->select(view);
  if (!sel) return d;  // no match: the original service
  d.rule = sel->rule;
  if (sel->match_index < sel->rule->matches.size()) d.match = &sel->rule->matches[sel->match_index];
  d.route = sel->route->ns + "/" + sel->route->name;
  if (sel->rule->filters.redirect) {
    d.kind = RequestDecision::Kind::Redirect;
    return d;
  }
  const auto pick = pick_backend(sel->rule->backends, random);
  if (!pick) {
    d.kind = RequestDecision::Kind::NoBackend;
    d.reason = fmt::format("route {} rule {} has no backend with a weight", d.route, sel->rule_index);
    return d;
  }
  const BackendRef& b = sel->rule->backends[*pick];
  const std::string& bns = b.ns.empty() ? sel->route->ns : b.ns;
  const state::Service* svc = service_by_name(bns, b.name);
  if (svc == nullptr) {
    d.kind = RequestDecision::Kind::NoBackend;
    d.reason = fmt::format("route {}: backend service {}/{} is unknown", d.route, bns, b.name);
    return d;
  }
  d.service = svc;
  d.workload = nullptr;
  d.port = b.port != 0 ? b.port : dst.port;
  return d;
}

}  // namespace ambient::waypoint
