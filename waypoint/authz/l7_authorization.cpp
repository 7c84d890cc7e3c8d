#include "waypoint/authz/l7_authorization.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "common/base/ascii.h"

namespace ambient::waypoint {

namespace {

bool any_matches(const std::vector<StringPattern>& patterns, std::string_view s) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const StringPattern& p) { return p.matches(s); });
}

// A positive list holds if empty or one entry matches; a negative list holds if no entry matches.
bool field_holds(const std::vector<StringPattern>& yes, const std::vector<StringPattern>& no, std::string_view s) {
  return (yes.empty() || any_matches(yes, s)) && !any_matches(no, s);
}

// An identity-derived field (principal, namespace): without identity no positive entry matches, and no
// negative entry matches either (Istio: a `notPrincipals` rule holds for a plaintext peer).
bool identity_field_holds(const std::vector<StringPattern>& yes, const std::vector<StringPattern>& no,
                          std::optional<std::string_view> value) {
  if (!value) return yes.empty();
  return field_holds(yes, no, *value);
}

bool ip_holds(const std::vector<IpBlock>& yes, const std::vector<IpBlock>& no, const rbac::IpAddress& ip) {
  auto in = [&](const std::vector<IpBlock>& blocks) {
    return std::any_of(blocks.begin(), blocks.end(), [&](const IpBlock& b) { return b.contains(ip); });
  };
  return (yes.empty() || in(yes)) && !in(no);
}

bool port_holds(const std::vector<std::uint16_t>& yes, const std::vector<std::uint16_t>& no, std::uint16_t port) {
  auto in = [&](const std::vector<std::uint16_t>& ports) { return std::find(ports.begin(), ports.end(), port) != ports.end(); };
  return (yes.empty() || in(yes)) && !in(no);
}

std::optional<std::string_view> header(const L7Request& r, std::string_view name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return std::nullopt;
}

bool source_holds(const Source& s, const L7Request& r) {
  const std::optional<std::string_view> principal = r.source ? std::optional(r.source->principal()) : std::nullopt;
  const std::optional<std::string_view> ns = r.source ? std::optional(r.source->namespace_()) : std::nullopt;
  return identity_field_holds(s.principals, s.not_principals, principal) &&
         identity_field_holds(s.namespaces, s.not_namespaces, ns) && ip_holds(s.ip_blocks, s.not_ip_blocks, r.source_ip);
}

bool host_holds(const std::vector<StringPattern>& yes, const std::vector<StringPattern>& no, std::string_view host) {
  const std::string full = ascii_lower(host);
  std::string bare = full;  // without ":port" (an IPv6 literal keeps its brackets)
  if (const auto colon = bare.rfind(':'); colon != std::string::npos && bare.find(']', colon) == std::string::npos &&
                                          (bare.front() == '[' || bare.find(':') == colon))
    bare.resize(colon);
  auto in = [&](const std::vector<StringPattern>& ps) {
    return std::any_of(ps.begin(), ps.end(), [&](const StringPattern& p) {
      StringPattern lowered{p.kind, ascii_lower(p.value)};
      return lowered.matches(full) || lowered.matches(bare);
    });
  };
  return (yes.empty() || in(yes)) && !in(no);
}

// Opaque TCP has no HTTP attributes: a field that needs one holds for DENY and not for ALLOW (`http_unknown`),
// so a policy written for HTTP is stricter, never looser, on a TCP connection (Istio's TCP translation).
bool operation_holds(const Operation& o, const L7Request& r, bool http_unknown) {
  if (r.opaque && !(o.methods.empty() && o.not_methods.empty() && o.paths.empty() && o.not_paths.empty() && o.hosts.empty() &&
                    o.not_hosts.empty()))
    return http_unknown && port_holds(o.ports, o.not_ports, r.destination_port);
  return field_holds(o.methods, o.not_methods, r.method) && field_holds(o.paths, o.not_paths, r.path) &&
         host_holds(o.hosts, o.not_hosts, r.host) && port_holds(o.ports, o.not_ports, r.destination_port);
}

bool condition_holds(const Condition& c, const L7Request& r, bool http_unknown) {
  using Key = Condition::Key;
  switch (c.key) {
    case Key::SourceIp: return ip_holds(c.ip_values, c.not_ip_values, r.source_ip);
    case Key::DestinationIp: return ip_holds(c.ip_values, c.not_ip_values, r.destination_ip);
    case Key::DestinationPort: return field_holds(c.values, c.not_values, std::to_string(r.destination_port));
    case Key::SourceNamespace:
      return identity_field_holds(c.values, c.not_values, r.source ? std::optional(r.source->namespace_()) : std::nullopt);
    case Key::SourcePrincipal:
      return identity_field_holds(c.values, c.not_values, r.source ? std::optional(r.source->principal()) : std::nullopt);
    case Key::RequestHeader: {
      if (r.opaque) return http_unknown;
      const auto v = header(r, c.header);
      if (!v) return c.values.empty();  // an absent header matches no value, and no notValue
      return field_holds(c.values, c.not_values, *v);
    }
  }
  return false;
}

bool rule_holds(const L7Rule& rule, const L7Request& r, bool http_unknown) {
  const bool from = rule.from.empty() || std::any_of(rule.from.begin(), rule.from.end(), [&](const Source& s) { return source_holds(s, r); });
  const bool to = rule.to.empty() || std::any_of(rule.to.begin(), rule.to.end(), [&](const Operation& o) { return operation_holds(o, r, http_unknown); });
  const bool when = std::all_of(rule.when.begin(), rule.when.end(), [&](const Condition& c) { return condition_holds(c, r, http_unknown); });
  return from && to && when;
}

}  // namespace

bool StringPattern::matches(std::string_view s) const {
  switch (kind) {
    case Kind::Exact: return s == value;
    case Kind::Prefix: return s.starts_with(value);
    case Kind::Suffix: return s.ends_with(value);
    case Kind::Any: return !s.empty();
  }
  return false;
}

Result<StringPattern> parse_pattern(std::string_view text, std::string_view where) {
  if (text.empty()) return errorf(ErrorKind::InvalidArgument, "{}: empty value", where);
  if (text == "*") return StringPattern{StringPattern::Kind::Any, ""};
  const auto stars = std::count(text.begin(), text.end(), '*');
  if (stars == 0) return StringPattern{StringPattern::Kind::Exact, std::string(text)};
  if (stars == 1 && text.back() == '*') return StringPattern{StringPattern::Kind::Prefix, std::string(text.substr(0, text.size() - 1))};
  if (stars == 1 && text.front() == '*') return StringPattern{StringPattern::Kind::Suffix, std::string(text.substr(1))};
  return errorf(ErrorKind::InvalidArgument, "{}: '{}': '*' may only be the whole value, its first or its last character", where, text);
}

bool IpBlock::contains(const rbac::IpAddress& raw) const {
  const rbac::IpAddress ip = raw.canonical();
  if (ip.is_v4() != address.is_v4()) return false;
  const auto a = ip.bytes(), b = address.bytes();
  std::size_t bits = prefix_len;
  for (std::size_t i = 0; i < a.size() && bits > 0; ++i) {
    const std::uint8_t mask = bits >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - bits));
    if ((a[i] & mask) != (b[i] & mask)) return false;
    bits = bits >= 8 ? bits - 8 : 0;
  }
  return true;
}

Result<IpBlock> parse_ip_block(std::string_view text, std::string_view where) {
  const auto slash = text.find('/');
  auto ip = rbac::IpAddress::parse(text.substr(0, slash));
  if (!ip) return errorf(ErrorKind::InvalidArgument, "{}: '{}' is not an IP address or CIDR", where, text);
  IpBlock b{ip->canonical(), 0};
  const unsigned max = b.address.is_v4() ? 32 : 128;
  b.prefix_len = static_cast<std::uint8_t>(max);
  if (slash != std::string_view::npos) {
    const auto len_text = text.substr(slash + 1);
    unsigned len = 0;
    if (len_text.empty() || len_text.size() > 3 || !std::all_of(len_text.begin(), len_text.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        (len = static_cast<unsigned>(std::stoul(std::string(len_text)))) > max)
      return errorf(ErrorKind::InvalidArgument, "{}: '{}': the prefix length must be 0..{}", where, text, max);
    b.prefix_len = static_cast<std::uint8_t>(len);
  }
  // Host bits set past the prefix are a typo more often than intent: refuse them (as Kubernetes does).
  const auto bytes = b.address.bytes();
  for (unsigned bit = b.prefix_len; bit < max; ++bit)
    if (bytes[bit / 8] & (0x80 >> (bit % 8)))
      return errorf(ErrorKind::InvalidArgument, "{}: '{}' has bits set past its /{} prefix", where, text, b.prefix_len);
  return b;
}

Result<Condition> parse_condition(std::string_view key, const std::vector<std::string>& values,
                                  const std::vector<std::string>& not_values, std::string_view where) {
  const std::string at = fmt::format("{} (key {})", where, key);
  if (values.empty() && not_values.empty())
    return errorf(ErrorKind::InvalidArgument, "{}: needs values or notValues", at);
  Condition c;
  using Key = Condition::Key;
  if (key.starts_with("request.headers[") && key.ends_with("]") && key.size() > 17) {
    c.key = Key::RequestHeader;
    c.header = ascii_lower(key.substr(16, key.size() - 17));
  } else if (key == "source.ip" || key == "remote.ip") {
    c.key = Key::SourceIp;
  } else if (key == "destination.ip") {
    c.key = Key::DestinationIp;
  } else if (key == "destination.port") {
    c.key = Key::DestinationPort;
  } else if (key == "source.namespace") {
    c.key = Key::SourceNamespace;
  } else if (key == "source.principal") {
    c.key = Key::SourcePrincipal;
  } else {
    return errorf(ErrorKind::Unsupported, "{}: this waypoint does not evaluate '{}' (request.auth.* needs RequestAuthentication; "
                  "supported: request.headers[...], source.ip, remote.ip, source.namespace, source.principal, destination.ip, "
                  "destination.port)", at, key);
  }
  const bool ip_key = c.key == Key::SourceIp || c.key == Key::DestinationIp;
  for (auto [list, out, ips] : {std::tuple{&values, &c.values, &c.ip_values}, std::tuple{&not_values, &c.not_values, &c.not_ip_values}}) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string item = fmt::format("{}[{}]", at, i);
      if (ip_key) {
        auto b = parse_ip_block((*list)[i], item);
        if (!b) return std::move(b).error();
        ips->push_back(*b);
      } else {
        if (c.key == Key::DestinationPort) {
          const auto& v = (*list)[i];
          if (v.empty() || v.size() > 5 || !std::all_of(v.begin(), v.end(), [](char ch) { return ch >= '0' && ch <= '9'; }) || std::stoul(v) > 65535)
            return errorf(ErrorKind::InvalidArgument, "{}: '{}' is not a port", item, v);
        }
        auto p = parse_pattern((*list)[i], item);
        if (!p) return std::move(p).error();
        out->push_back(std::move(*p));
      }
    }
  }
  return c;
}

Result<L7Policy::Action> parse_action(std::string_view text, std::string_view where) {
  if (text.empty() || text == "ALLOW") return L7Policy::Action::Allow;
  if (text == "DENY") return L7Policy::Action::Deny;
  if (text == "CUSTOM")
    return errorf(ErrorKind::Unsupported, "{}: action CUSTOM (ext_authz) is not supported by this waypoint; the policy is refused "
                  "rather than ignored", where);
  if (text == "AUDIT") return errorf(ErrorKind::Unsupported, "{}: action AUDIT is not supported by this waypoint", where);
  return errorf(ErrorKind::InvalidArgument, "{}: action '{}' is not ALLOW, DENY, CUSTOM or AUDIT", where, text);
}

bool matches(const L7Policy& policy, const L7Request& request) {
  return std::any_of(policy.rules.begin(), policy.rules.end(), [&](const L7Rule& r) { return rule_holds(r, request, policy.action == L7Policy::Action::Deny); });
}

rbac::Decision evaluate(std::span<const L7Policy> policies, const L7Request& request) {
  rbac::Decision d;
  for (const auto& p : policies)
    if (p.action == L7Policy::Action::Deny && matches(p, request)) {
      d.allowed = false;
      d.reason = rbac::Decision::Reason::ExplicitlyDenied;
      d.policy = p.ns + "/" + p.name;
      return d;
    }
  bool any_allow = false;
  for (const auto& p : policies) {
    if (p.action != L7Policy::Action::Allow) continue;
    any_allow = true;
    if (matches(p, request)) {
      d.reason = rbac::Decision::Reason::AllowedByPolicy;
      d.policy = p.ns + "/" + p.name;
      return d;
    }
  }
  if (any_allow) {
    d.allowed = false;
    d.reason = rbac::Decision::Reason::NotAllowed;
  }
  return d;
}

}  // namespace ambient::waypoint
