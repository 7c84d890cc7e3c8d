#pragma once
// L4 authorization: ztunnel's semantics (ztunnel.md section 7; istio/ztunnel src/rbac.rs and
// state.rs::assert_rbac), evaluated directly over the istio.security.Authorization protobufs.
// Pure: no I/O, no logging; the caller logs the Decision (to_string) at debug, or info with
// AUTHZ_POLICY_INFO_LOGGING.
//
// Decision order:
//   1. dry-run DENY policies that match are recorded in dry_run_matches (never enforced);
//   2. any enforcing DENY policy matches     => deny  (ExplicitlyDenied, policy = "ns/name");
//   3. dry-run ALLOW policies that match are recorded;
//   4. no enforcing ALLOW policy             => allow (NoPolicies); if dry-run ALLOW policies exist and
//      none matched, that is recorded too (enforcing them would deny);
//   5. any enforcing ALLOW policy matches    => allow (AllowedByPolicy, policy = "ns/name");
//   6. otherwise                             => deny  (NotAllowed).
//
// Matching (Authorization -> Rule -> Clause -> Match):
//   policy  matches <=> any rule matches; zero rules match nothing (an "allow nothing" policy);
//   rule    matches <=> all clauses match; zero clauses match everything;
//   clause  matches <=> any non-empty match matches; zero matches match everything, but a clause whose
//                       matches are all empty does not match (empty matches are skipped);
//   match   matches <=> every populated field kind holds: positive list = any entry matches,
//                       negative (not_*) list = no entry matches.
// Entries ztunnel drops while converting the proto are treated as absent, so they neither constrain
// a field nor make a Match non-empty: a StringMatch with no oneof set, and an Address that is not 4/16
// bytes or whose length (taken modulo 256, as ztunnel's `as u8`) exceeds 32/128. Ports are taken
// modulo 65536 (`as u16`). Match.extensions is ignored.
//
// Field semantics:
//   principals / not_principals      SPIFFE id without "spiffe://" ("td/ns/x/sa/y"); no identity never
//                                    matches an entry, so `not_principals: [presence]` holds for plaintext
//                                    (Istio's STRICT mTLS policy) and any positive principal fails.
//   namespaces / not_namespaces      the identity's namespace; without identity it is "" (as ztunnel):
//                                    presence/non-empty strings fail, only exact ""/prefix ""/suffix "" hold.
//   service_accounts / not_...       exact (namespace, service account); trust domain ignored; no identity
//                                    never matches an entry.
//   source_ips / destination_ips     CIDR containment, same family only. Connection IPs are canonicalized
//   (and not_*)                      first (::ffff:a.b.c.d -> a.b.c.d), so mapped peers match IPv4 CIDRs.
//   destination_ports / not_...      equality with Connection::destination_port.
//
// Cost: no allocation unless a decision names a policy (Decision::policy) or a dry-run policy exists.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/rbac/connection.h"
#include "proto/authorization.pb.h"

namespace ambient::rbac {

struct Decision {
  enum class Reason : std::uint8_t {
    NoPolicies,        // allowed: no enforcing ALLOW policy applies (and no enforcing DENY matched)
    AllowedByPolicy,   // allowed: the enforcing ALLOW policy `policy` matched
    ExplicitlyDenied,  // denied: the enforcing DENY policy `policy` matched
    NotAllowed,        // denied: enforcing ALLOW policies exist, none matched
  };

  bool allowed = true;
  Reason reason = Reason::NoPolicies;
  std::string policy;                        // "ns/name" that decided; empty for NoPolicies/NotAllowed
  std::vector<std::string> dry_run_matches;  // what dry-run policies would have done, for logging
};

// Evaluates the policies that apply to the destination workload (namespace + GLOBAL + selected; the
// caller collects them). Null entries (policy names the snapshot does not know) are skipped, as are
// policies whose action is not ALLOW/DENY (ztunnel rejects those at conversion).
Decision evaluate(std::span<const istio::security::Authorization* const> policies, const Connection& conn);

// True if `policy` matches `conn` (its action and dry_run are not consulted).
bool matches(const istio::security::Authorization& policy, const Connection& conn);

// "namespace/name"; GLOBAL policies have namespace "" and give "/name".
std::string policy_key(const istio::security::Authorization& policy);

std::string_view to_string(Decision::Reason reason) noexcept;
// One line for logs, e.g. "deny: explicitly denied by: ns/name [dry-run: ALLOW ns/other would allow]".
std::string to_string(const Decision& decision);

}  // namespace ambient::rbac
