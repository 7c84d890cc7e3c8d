#pragma once
// L7 authorization at the waypoint: Istio AuthorizationPolicy semantics over one HTTP request (pure: no I/O).
// Policies come from Kubernetes-shaped YAML (a later layer parses them into these values, attached by
// targetRefs); this layer validates the pieces (parse_*) and evaluates.
//
// Decision, as Istio's: any DENY policy matches => deny; else, if ALLOW policies apply, allow iff one matches;
// else allow. CUSTOM (ext_authz) is refused at parse time with a clear error (parse_action).
// Matching: a policy matches if any rule matches; a policy with no rules matches nothing (so an ALLOW policy
// without rules denies everything, a DENY without rules denies nothing). A rule matches if one of its `from`
// sources holds (none = any source), one of its `to` operations holds (none = any request), and every `when`
// condition holds. A source/operation holds when each field it sets holds: a positive list needs one entry to
// match, a `not*` list needs none to match.
// Fields: principals "<td>/ns/<ns>/sa/<sa>" (no "spiffe://") and namespaces from the peer's mTLS identity (no
// identity matches no positive entry); ipBlocks against the source IP; methods; paths against the path without
// the query; hosts case-insensitively against the Host/:authority with and without its port; ports against the
// destination port. String patterns as Istio: "exact", "prefix*", "*suffix", "*" (any non-empty value).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/result.h"
#include "common/rbac/authorization.h"
#include "common/rbac/connection.h"

namespace ambient::waypoint {

struct StringPattern {
  enum class Kind : std::uint8_t { Exact, Prefix, Suffix, Any };
  Kind kind = Kind::Exact;
  std::string value;
  bool matches(std::string_view s) const;
};
// "abc" | "abc*" | "*abc" | "*". InvalidArgument (naming `where`) for "" or a '*' anywhere else.
Result<StringPattern> parse_pattern(std::string_view text, std::string_view where);

struct IpBlock {
  rbac::IpAddress address;
  std::uint8_t prefix_len = 32;
  bool contains(const rbac::IpAddress& ip) const;  // same family only; v4-mapped addresses count as IPv4
};
// "10.0.0.0/8", "10.1.2.3" (a /32), "2001:db8::/32". The address must have no bits set past the prefix.
Result<IpBlock> parse_ip_block(std::string_view text, std::string_view where);

// (Every member has an initializer, so designated initializers may name only the fields they set.)
struct Source {
  std::vector<StringPattern> principals{}, not_principals{}, namespaces{}, not_namespaces{};
  std::vector<IpBlock> ip_blocks{}, not_ip_blocks{};
};

struct Operation {
  std::vector<StringPattern> methods{}, not_methods{}, paths{}, not_paths{}, hosts{}, not_hosts{};
  std::vector<std::uint16_t> ports{}, not_ports{};
};

struct Condition {
  enum class Key : std::uint8_t { RequestHeader, SourceIp, SourceNamespace, SourcePrincipal, DestinationIp, DestinationPort };
  Key key = Key::RequestHeader;
  std::string header;  // RequestHeader: lower-case name
  std::vector<StringPattern> values, not_values;  // string keys and ports
  std::vector<IpBlock> ip_values, not_ip_values;  // IP keys
};
// Istio's `when` entry. Keys: request.headers[<name>], source.ip, remote.ip, source.namespace,
// source.principal, destination.ip, destination.port. Others (request.auth.*: no RequestAuthentication here;
// connection.sni; experimental.*) are refused, naming the key, rather than silently matching or not.
// At least one of values / notValues.
Result<Condition> parse_condition(std::string_view key, const std::vector<std::string>& values,
                                  const std::vector<std::string>& not_values, std::string_view where);

struct L7Rule {
  std::vector<Source> from;
  std::vector<Operation> to;
  std::vector<Condition> when;
};

struct L7Policy {
  enum class Action : std::uint8_t { Allow, Deny };
  std::string ns, name;
  Action action = Action::Allow;
  std::vector<L7Rule> rules;
};
// "ALLOW" (also the default when absent) | "DENY"; "CUSTOM" and "AUDIT" are refused with the reason.
Result<L7Policy::Action> parse_action(std::string_view text, std::string_view where);

// One request as the waypoint sees it. Header names lower-case.
struct L7Request {
  std::optional<rbac::Identity> source;  // the HBONE peer (or PROXY protocol TLV) identity
  rbac::IpAddress source_ip, destination_ip;
  std::uint16_t destination_port = 0;
  std::string_view method, path, host;  // path without the query
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  // Opaque TCP (no HTTP inside the tunnel): methods, paths, hosts and request headers are unknown. A rule that
  // needs them holds in DENY policies and not in ALLOW ones (Istio's TCP translation: stricter, never looser).
  bool opaque = false;
};

bool matches(const L7Policy& policy, const L7Request& request);
// Decision reasons as rbac::Decision (NoPolicies, AllowedByPolicy, ExplicitlyDenied, NotAllowed); `policy`
// names "ns/name" of the deciding policy.
rbac::Decision evaluate(std::span<const L7Policy> policies, const L7Request& request);

}  // namespace ambient::waypoint
