#include "common/rbac/authorization.h"

#include <iterator>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace ambient::rbac {

namespace sec = istio::security;

namespace {

// The connection attributes with IPs canonicalized once per evaluation.
struct Attributes {
  const Identity* identity;  // nullptr for plaintext
  IpAddress source_ip;
  IpAddress destination_ip;
  std::uint16_t destination_port;

  explicit Attributes(const Connection& c)
      : identity(c.source ? &*c.source : nullptr),
        source_ip(c.source_ip.canonical()),
        destination_ip(c.destination_ip.canonical()),
        destination_port(c.destination_port) {}
};

// ---- entries: validity (ztunnel drops invalid entries at conversion) and single-entry predicates ----

bool is_valid(const sec::StringMatch& m) { return m.match_type_case() != sec::StringMatch::MATCH_TYPE_NOT_SET; }

bool string_matches(const sec::StringMatch& m, std::string_view value) {
  switch (m.match_type_case()) {
    case sec::StringMatch::kExact: return value == m.exact();
    case sec::StringMatch::kPrefix: return value.starts_with(m.prefix());
    case sec::StringMatch::kSuffix: return value.ends_with(m.suffix());
    case sec::StringMatch::kPresence: return !value.empty();
    case sec::StringMatch::MATCH_TYPE_NOT_SET: break;
  }
  return false;
}

// Prefix length as ztunnel reads it (`length as u8`); valid up to the family's bit width.
std::uint8_t prefix_length(const sec::Address& a) { return static_cast<std::uint8_t>(a.length()); }

bool is_valid(const sec::Address& a) {
  const std::size_t bits = a.address().size() * 8;
  return (bits == 32 || bits == 128) && prefix_length(a) <= bits;
}

// CIDR containment; an IPv4 CIDR never contains an IPv6 address and vice versa.
bool cidr_contains(const sec::Address& cidr, const IpAddress& ip) {
  const std::string& net = cidr.address();
  const auto addr = ip.bytes();
  if (net.size() != addr.size()) return false;
  const std::size_t length = prefix_length(cidr);
  if (length > addr.size() * 8) return false;  // invalid entry (is_valid); never read past the bytes
  const std::size_t full_bytes = length / 8;
  for (std::size_t i = 0; i < full_bytes; ++i) {
    if (static_cast<std::uint8_t>(net[i]) != addr[i]) return false;
  }
  if (const std::size_t rest = length % 8; rest != 0) {
    const auto mask = static_cast<std::uint8_t>(0xff00u >> rest);
    if ((static_cast<std::uint8_t>(net[full_bytes]) & mask) != (addr[full_bytes] & mask)) return false;
  }
  return true;
}

bool is_valid(const sec::ServiceAccountMatch&) { return true; }
bool is_valid(std::uint32_t /*port*/) { return true; }

// ---- one field kind: positive and negative list ----

template <typename List>
bool has_valid(const List& list) {
  for (const auto& entry : list) {
    if (is_valid(entry)) return true;
  }
  return false;
}

// Positive list: holds if it has no valid entry, else if any valid entry matches.
// Negative list: holds if no valid entry matches.
template <typename List, typename Pred>
bool field_holds(const List& positive, const List& negative, Pred pred) {
  bool declared = false;
  bool matched = false;
  for (const auto& entry : positive) {
    if (!is_valid(entry)) continue;
    declared = true;
    if (pred(entry)) {
      matched = true;
      break;
    }
  }
  if (declared && !matched) return false;
  for (const auto& entry : negative) {
    if (is_valid(entry) && pred(entry)) return false;
  }
  return true;
}

// A Match with no (valid) entry in any field is skipped by its clause.
bool is_empty(const sec::Match& m) {
  return !has_valid(m.namespaces()) && !has_valid(m.not_namespaces()) && !has_valid(m.principals()) &&
         !has_valid(m.not_principals()) && !has_valid(m.source_ips()) && !has_valid(m.not_source_ips()) &&
         !has_valid(m.destination_ips()) && !has_valid(m.not_destination_ips()) &&
         m.destination_ports().empty() && m.not_destination_ports().empty() && m.service_accounts().empty() &&
         m.not_service_accounts().empty();
}

bool match_holds(const sec::Match& m, const Attributes& a) {
  const auto destination_ip = [&](const sec::Address& cidr) { return cidr_contains(cidr, a.destination_ip); };
  const auto source_ip = [&](const sec::Address& cidr) { return cidr_contains(cidr, a.source_ip); };
  const auto port = [&](std::uint32_t p) { return static_cast<std::uint16_t>(p) == a.destination_port; };
  const auto service_account = [&](const sec::ServiceAccountMatch& sa) {
    return a.identity != nullptr && a.identity->namespace_() == sa.namespace_() &&
           a.identity->service_account() == sa.service_account();
  };
  // No identity: no principal entry matches (ztunnel requires the "spiffe://" it strips).
  const auto principal = [&](const sec::StringMatch& s) {
    return a.identity != nullptr && string_matches(s, a.identity->principal());
  };
  // No identity: the namespace is "" (ztunnel's unwrap_or_default).
  const std::string_view ns = a.identity != nullptr ? a.identity->namespace_() : std::string_view{};
  const auto namespace_ = [&](const sec::StringMatch& s) { return string_matches(s, ns); };

  return field_holds(m.destination_ips(), m.not_destination_ips(), destination_ip) &&
         field_holds(m.source_ips(), m.not_source_ips(), source_ip) &&
         field_holds(m.destination_ports(), m.not_destination_ports(), port) &&
         field_holds(m.service_accounts(), m.not_service_accounts(), service_account) &&
         field_holds(m.principals(), m.not_principals(), principal) &&
         field_holds(m.namespaces(), m.not_namespaces(), namespace_);
}

bool clause_holds(const sec::Clause& clause, const Attributes& a) {
  if (clause.matches().empty()) return true;
  for (const sec::Match& m : clause.matches()) {
    if (!is_empty(m) && match_holds(m, a)) return true;
  }
  return false;
}

bool rule_holds(const sec::Rule& rule, const Attributes& a) {
  for (const sec::Clause& clause : rule.clauses()) {
    if (!clause_holds(clause, a)) return false;
  }
  return true;
}

bool policy_matches(const sec::Authorization& policy, const Attributes& a) {
  for (const sec::Rule& rule : policy.rules()) {
    if (rule_holds(rule, a)) return true;
  }
  return false;  // includes "no rules": matches nothing
}

bool is_enforcing(const sec::Authorization* p, sec::Action action) {
  return p != nullptr && p->action() == action && !p->dry_run();
}

bool is_dry_run(const sec::Authorization* p, sec::Action action) {
  return p != nullptr && p->action() == action && p->dry_run();
}

}  // namespace

bool matches(const sec::Authorization& policy, const Connection& conn) {
  return policy_matches(policy, Attributes(conn));
}

Decision evaluate(std::span<const sec::Authorization* const> policies, const Connection& conn) {
  const Attributes attrs(conn);
  Decision d;

  for (const sec::Authorization* p : policies) {
    if (is_dry_run(p, sec::DENY) && policy_matches(*p, attrs)) {
      d.dry_run_matches.push_back(fmt::format("DENY {} would deny", policy_key(*p)));
    }
  }
  for (const sec::Authorization* p : policies) {
    if (is_enforcing(p, sec::DENY) && policy_matches(*p, attrs)) {
      d.allowed = false;
      d.reason = Decision::Reason::ExplicitlyDenied;
      d.policy = policy_key(*p);
      return d;
    }
  }

  bool any_enforcing_allow = false;
  bool any_dry_run_allow = false;
  bool dry_run_allow_matched = false;
  for (const sec::Authorization* p : policies) {
    any_enforcing_allow = any_enforcing_allow || is_enforcing(p, sec::ALLOW);
    if (!is_dry_run(p, sec::ALLOW)) continue;
    any_dry_run_allow = true;
    if (policy_matches(*p, attrs)) {
      dry_run_allow_matched = true;
      d.dry_run_matches.push_back(fmt::format("ALLOW {} would allow", policy_key(*p)));
    }
  }
  if (!any_enforcing_allow) {
    if (any_dry_run_allow && !dry_run_allow_matched) {
      d.dry_run_matches.emplace_back("no dry-run ALLOW policy matched: enforcing them would deny");
    }
    d.allowed = true;
    d.reason = Decision::Reason::NoPolicies;
    return d;
  }

  for (const sec::Authorization* p : policies) {
    if (is_enforcing(p, sec::ALLOW) && policy_matches(*p, attrs)) {
      d.allowed = true;
      d.reason = Decision::Reason::AllowedByPolicy;
      d.policy = policy_key(*p);
      return d;
    }
  }
  d.allowed = false;
  d.reason = Decision::Reason::NotAllowed;
  return d;
}

std::string policy_key(const sec::Authorization& policy) {
  std::string key;
  key.reserve(policy.namespace_().size() + 1 + policy.name().size());
  key.append(policy.namespace_()).append(1, '/').append(policy.name());
  return key;
}

std::string_view to_string(Decision::Reason reason) noexcept {
  switch (reason) {
    case Decision::Reason::NoPolicies: return "NoPolicies";
    case Decision::Reason::AllowedByPolicy: return "AllowedByPolicy";
    case Decision::Reason::ExplicitlyDenied: return "ExplicitlyDenied";
    case Decision::Reason::NotAllowed: return "NotAllowed";
  }
  return "Unknown";
}

std::string to_string(const Decision& d) {
  std::string out;
  switch (d.reason) {
    case Decision::Reason::NoPolicies: out = "allow: no allow policies"; break;
    case Decision::Reason::AllowedByPolicy: out = fmt::format("allow: allowed by: {}", d.policy); break;
    case Decision::Reason::ExplicitlyDenied: out = fmt::format("deny: explicitly denied by: {}", d.policy); break;
    case Decision::Reason::NotAllowed: out = "deny: allow policies exist, but none allowed"; break;
  }
  if (!d.dry_run_matches.empty()) {
    fmt::format_to(std::back_inserter(out), " [dry-run: {}]", fmt::join(d.dry_run_matches, "; "));
  }
  return out;
}

}  // namespace ambient::rbac
