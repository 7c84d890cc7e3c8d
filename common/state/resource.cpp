#include "common/state/resource.h"

#include <set>

#include <fmt/format.h>

namespace ambient::state {
namespace {

using istio::workload::GatewayAddress;
using istio::workload::Port;

constexpr std::uint32_t kMaxPort = 65535;

std::optional<Invalid> bad(std::string field, std::string reason, ErrorKind kind = ErrorKind::InvalidArgument) {
  return Invalid{std::move(field), std::move(reason), kind};
}

std::string byte_count_reason(std::size_t n) {
  return fmt::format("{} bytes, want 4 (IPv4) or 16 (IPv6)", n);
}

bool ip_size_ok(std::size_t n) { return n == 4 || n == 16; }

std::optional<Invalid> check_gateway(const std::string& field, const GatewayAddress& g) {
  switch (g.destination_case()) {
    case GatewayAddress::kHostname:
      if (g.hostname().namespace_().empty()) return bad(field + ".hostname.namespace", "missing");
      if (g.hostname().hostname().empty()) return bad(field + ".hostname.hostname", "missing");
      break;
    case GatewayAddress::kAddress:
      if (!ip_size_ok(g.address().address().size())) {
        return bad(field + ".address.address", byte_count_reason(g.address().address().size()));
      }
      break;
    case GatewayAddress::DESTINATION_NOT_SET:
      return bad(field, "no destination (hostname or address)");
  }
  if (g.hbone_mtls_port() == 0 || g.hbone_mtls_port() > kMaxPort) {
    return bad(field + ".hbone_mtls_port", fmt::format("{} is not a port (1..65535)", g.hbone_mtls_port()));
  }
  return std::nullopt;
}

// A service->target port list. target_port 0 means "named port, resolved per endpoint" (allowed).
template <typename Ports>
std::optional<Invalid> check_ports(const std::string& field, const Ports& ports) {
  std::set<std::uint32_t> seen;
  for (int i = 0; i < ports.size(); ++i) {
    const Port& p = ports.Get(i);
    const std::string f = fmt::format("{}[{}]", field, i);
    if (p.service_port() == 0 || p.service_port() > kMaxPort) {
      return bad(f + ".service_port", fmt::format("{} is not a port (1..65535)", p.service_port()));
    }
    if (p.target_port() > kMaxPort) {
      return bad(f + ".target_port", fmt::format("{} is not a port (0..65535)", p.target_port()));
    }
    if (!istio::workload::AppProtocol_IsValid(p.app_protocol())) {
      return bad(f + ".app_protocol", fmt::format("unknown value {}", p.app_protocol()));
    }
    if (!seen.insert(p.service_port()).second) {
      return bad(f + ".service_port", fmt::format("service port {} listed twice", p.service_port()));
    }
  }
  return std::nullopt;
}

template <typename Matches>
std::optional<Invalid> check_string_matches(const std::string& field, const Matches& ms) {
  for (int i = 0; i < ms.size(); ++i) {
    // ztunnel silently drops an empty StringMatch; in a positive list that widens the match to
    // "anything", so it is refused here.
    if (ms.Get(i).match_type_case() == istio::security::StringMatch::MATCH_TYPE_NOT_SET) {
      return bad(fmt::format("{}[{}]", field, i), "no match type (exact, prefix, suffix or presence)");
    }
  }
  return std::nullopt;
}

template <typename Addresses>
std::optional<Invalid> check_cidrs(const std::string& field, const Addresses& as) {
  for (int i = 0; i < as.size(); ++i) {
    const auto& a = as.Get(i);
    if (!ip_size_ok(a.address().size())) {
      return bad(fmt::format("{}[{}].address", field, i), byte_count_reason(a.address().size()));
    }
    const std::uint32_t bits = static_cast<std::uint32_t>(a.address().size()) * 8;
    if (a.length() > bits) {
      return bad(fmt::format("{}[{}].length", field, i), fmt::format("{} is longer than {} bits", a.length(), bits));
    }
  }
  return std::nullopt;
}

template <typename Ports>
std::optional<Invalid> check_match_ports(const std::string& field, const Ports& ps) {
  for (int i = 0; i < ps.size(); ++i) {
    if (ps.Get(i) == 0 || ps.Get(i) > kMaxPort) {
      return bad(fmt::format("{}[{}]", field, i), fmt::format("{} is not a port (1..65535)", ps.Get(i)));
    }
  }
  return std::nullopt;
}

template <typename Accounts>
std::optional<Invalid> check_accounts(const std::string& field, const Accounts& as) {
  for (int i = 0; i < as.size(); ++i) {
    if (as.Get(i).namespace_().empty()) return bad(fmt::format("{}[{}].namespace", field, i), "missing");
    if (as.Get(i).service_account().empty()) {
      return bad(fmt::format("{}[{}].service_account", field, i), "missing");
    }
  }
  return std::nullopt;
}

std::optional<Invalid> check_match(const std::string& f, const istio::security::Match& m) {
  std::optional<Invalid> r;
  if ((r = check_string_matches(f + ".namespaces", m.namespaces()))) return r;
  if ((r = check_string_matches(f + ".not_namespaces", m.not_namespaces()))) return r;
  if ((r = check_string_matches(f + ".principals", m.principals()))) return r;
  if ((r = check_string_matches(f + ".not_principals", m.not_principals()))) return r;
  if ((r = check_cidrs(f + ".source_ips", m.source_ips()))) return r;
  if ((r = check_cidrs(f + ".not_source_ips", m.not_source_ips()))) return r;
  if ((r = check_cidrs(f + ".destination_ips", m.destination_ips()))) return r;
  if ((r = check_cidrs(f + ".not_destination_ips", m.not_destination_ips()))) return r;
  if ((r = check_match_ports(f + ".destination_ports", m.destination_ports()))) return r;
  if ((r = check_match_ports(f + ".not_destination_ports", m.not_destination_ports()))) return r;
  if ((r = check_accounts(f + ".service_accounts", m.service_accounts()))) return r;
  if ((r = check_accounts(f + ".not_service_accounts", m.not_service_accounts()))) return r;
  return std::nullopt;
}

Error to_error(std::string_view kind, std::string_view name, const Invalid& inv) {
  return make_error(inv.kind, fmt::format("{} \"{}\": {}: {}", kind, name, inv.field, inv.reason));
}

}  // namespace

std::string_view workload_trust_domain(const Workload& w) noexcept {
  return w.trust_domain().empty() ? kDefaultTrustDomain : std::string_view(w.trust_domain());
}

std::string_view workload_service_account(const Workload& w) noexcept {
  return w.service_account().empty() ? kDefaultServiceAccount : std::string_view(w.service_account());
}

std::string_view workload_cluster_id(const Workload& w) noexcept {
  return w.cluster_id().empty() ? kDefaultClusterId : std::string_view(w.cluster_id());
}

std::uint32_t workload_capacity(const Workload& w) noexcept {
  return w.has_capacity() ? w.capacity().value() : kDefaultCapacity;
}

std::string workload_identity(const Workload& w) {
  return fmt::format("spiffe://{}/ns/{}/sa/{}", workload_trust_domain(w), w.namespace_(),
                     workload_service_account(w));
}

void apply_defaults(Workload& w) {
  if (w.trust_domain().empty()) w.set_trust_domain(std::string(kDefaultTrustDomain));
  if (w.service_account().empty()) w.set_service_account(std::string(kDefaultServiceAccount));
  if (w.cluster_id().empty()) w.set_cluster_id(std::string(kDefaultClusterId));
  if (!w.has_capacity()) w.mutable_capacity()->set_value(kDefaultCapacity);
}

std::string service_key(const Service& s) { return s.namespace_() + "/" + s.hostname(); }

std::string policy_key(const Authorization& a) { return a.namespace_() + "/" + a.name(); }

std::optional<std::pair<std::string_view, std::string_view>> split_namespaced_host(std::string_view key) noexcept {
  const auto slash = key.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == key.size()) return std::nullopt;
  return std::pair{key.substr(0, slash), key.substr(slash + 1)};
}

std::optional<Invalid> check(const Workload& w) {
  if (w.uid().empty()) return bad("uid", "missing");
  if (w.namespace_().empty()) return bad("namespace", "missing");
  for (int i = 0; i < w.addresses_size(); ++i) {
    if (!ip_size_ok(w.addresses(i).size())) {
      return bad(fmt::format("addresses[{}]", i), byte_count_reason(w.addresses(i).size()));
    }
  }
  if (w.tunnel_protocol() == istio::workload::LEGACY_ISTIO_MTLS) {
    return bad("tunnel_protocol", "LEGACY_ISTIO_MTLS is not supported (use HBONE or NONE)", ErrorKind::Unsupported);
  }
  if (!istio::workload::TunnelProtocol_IsValid(w.tunnel_protocol())) {
    return bad("tunnel_protocol", fmt::format("unknown value {}", w.tunnel_protocol()));
  }
  if (!istio::workload::WorkloadType_IsValid(w.workload_type())) {
    return bad("workload_type", fmt::format("unknown value {}", w.workload_type()));
  }
  if (!istio::workload::WorkloadStatus_IsValid(w.status())) {
    return bad("status", fmt::format("unknown value {}", w.status()));
  }
  if (!istio::workload::NetworkMode_IsValid(w.network_mode())) {
    return bad("network_mode", fmt::format("unknown value {}", w.network_mode()));
  }
  std::optional<Invalid> r;
  if (w.has_waypoint() && (r = check_gateway("waypoint", w.waypoint()))) return r;
  if (w.has_network_gateway() && (r = check_gateway("network_gateway", w.network_gateway()))) return r;
  if (w.has_application_tunnel()) {
    const auto& t = w.application_tunnel();
    if (!istio::workload::ApplicationTunnel::Protocol_IsValid(t.protocol())) {
      return bad("application_tunnel.protocol", fmt::format("unknown value {}", t.protocol()));
    }
    if (t.port() > kMaxPort) {
      return bad("application_tunnel.port", fmt::format("{} is not a port (0..65535)", t.port()));
    }
  }
  for (const auto& [key, ports] : w.services()) {
    const std::string f = fmt::format("services[\"{}\"]", key);
    if (!split_namespaced_host(key)) return bad(f, "key is not \"namespace/hostname\"");
    if ((r = check_ports(f + ".ports", ports.ports()))) return r;
  }
  for (int i = 0; i < w.authorization_policies_size(); ++i) {
    if (w.authorization_policies(i).empty()) return bad(fmt::format("authorization_policies[{}]", i), "empty name");
  }
  if (w.has_capacity() && w.capacity().value() == 0) {
    return bad("capacity", "0; capacity is a load-balancing weight and must be at least 1");
  }
  return std::nullopt;
}

std::optional<Invalid> check(const Service& s) {
  if (s.namespace_().empty()) return bad("namespace", "missing");
  if (s.hostname().empty()) return bad("hostname", "missing");
  for (int i = 0; i < s.addresses_size(); ++i) {
    const auto& a = s.addresses(i);
    if (!ip_size_ok(a.address().size())) {
      return bad(fmt::format("addresses[{}].address", i), byte_count_reason(a.address().size()));
    }
    const std::uint32_t bits = static_cast<std::uint32_t>(a.address().size()) * 8;
    if (a.has_length() && a.length() > bits) {
      return bad(fmt::format("addresses[{}].length", i), fmt::format("{} is longer than {} bits", a.length(), bits));
    }
  }
  std::optional<Invalid> r;
  if ((r = check_ports("ports", s.ports()))) return r;
  if (s.has_waypoint() && (r = check_gateway("waypoint", s.waypoint()))) return r;
  for (int i = 0; i < s.weighted_waypoints_size(); ++i) {
    const std::string f = fmt::format("weighted_waypoints[{}].destination", i);
    if (!s.weighted_waypoints(i).has_destination()) return bad(f, "missing");
    if ((r = check_gateway(f, s.weighted_waypoints(i).destination()))) return r;
  }
  if (s.has_load_balancing()) {
    const auto& lb = s.load_balancing();
    using LB = istio::workload::LoadBalancing;
    for (int i = 0; i < lb.routing_preference_size(); ++i) {
      const int v = lb.routing_preference(i);
      if (!LB::Scope_IsValid(v) || v == LB::UNSPECIFIED_SCOPE) {
        return bad(fmt::format("load_balancing.routing_preference[{}]", i), fmt::format("invalid scope {}", v));
      }
    }
    if (!LB::Mode_IsValid(lb.mode())) return bad("load_balancing.mode", fmt::format("unknown value {}", lb.mode()));
    if (!LB::HealthPolicy_IsValid(lb.health_policy())) {
      return bad("load_balancing.health_policy", fmt::format("unknown value {}", lb.health_policy()));
    }
    if (!LB::DnsConnectStrategy_IsValid(lb.dns_connect_strategy())) {
      return bad("load_balancing.dns_connect_strategy", fmt::format("unknown value {}", lb.dns_connect_strategy()));
    }
  }
  if (!istio::workload::IPFamilies_IsValid(s.ip_families())) {
    return bad("ip_families", fmt::format("unknown value {}", s.ip_families()));
  }
  if (!Service::Visibility_IsValid(s.visibility())) {
    return bad("visibility", fmt::format("unknown value {}", s.visibility()));
  }
  return std::nullopt;
}

std::optional<Invalid> check(const Authorization& a) {
  if (a.name().empty()) return bad("name", "missing");
  if (!istio::security::Scope_IsValid(a.scope())) return bad("scope", fmt::format("unknown value {}", a.scope()));
  if (!istio::security::Action_IsValid(a.action())) return bad("action", fmt::format("unknown value {}", a.action()));
  if (a.scope() == istio::security::NAMESPACE && a.namespace_().empty()) {
    return bad("namespace", "missing (required for NAMESPACE scope)");
  }
  for (int i = 0; i < a.rules_size(); ++i) {
    for (int j = 0; j < a.rules(i).clauses_size(); ++j) {
      const auto& c = a.rules(i).clauses(j);
      for (int k = 0; k < c.matches_size(); ++k) {
        if (auto r = check_match(fmt::format("rules[{}].clauses[{}].matches[{}]", i, j, k), c.matches(k))) return r;
      }
    }
  }
  return std::nullopt;
}

Result<void> validate(const Workload& w) {
  if (auto inv = check(w)) return to_error("workload", w.uid().empty() ? w.name() : w.uid(), *inv);
  return ok();
}

Result<void> validate(const Service& s) {
  if (auto inv = check(s)) return to_error("service", service_key(s), *inv);
  return ok();
}

Result<void> validate(const Authorization& a) {
  if (auto inv = check(a)) return to_error("policy", policy_key(a), *inv);
  return ok();
}

}  // namespace ambient::state
