#pragma once
// InpodRules: installs, verifies and removes the in-pod redirection rules (iptables or nftables, plus the
// fwmark ip rule and the local route of table <route_table>) inside a pod's network namespace, given an
// open netns fd. The node agent calls install() when a pod is enrolled, verify() at start-up for pods it
// already knows, and remove() when the pod leaves the mesh.
//
// How state is compared: our part of the pod's state (IptablesSave::our_lines(), nftables_our_lines(), the
// ip rule at <rule_priority>, all of table <route_table>) is read back with the tools' own listing commands
// and compared line by line with the same read-back taken from a scratch netns (scratch_netns.h) into which
// the same rules were installed once. So "exact" means exactly what install() produces, as printed by the
// iptables/nft/ip on this machine, with no hand-written canonical forms to drift from the tools.
// That read-back is cached per distinct RuleOptions (at most kMaxCachedOptions).
//
// Contract:
//  - install() is idempotent: when verify() would say Exact it runs only the read-back commands. Otherwise it
//    removes our filter rules and/or our routing (whichever part differs) and applies them again, then
//    reads back and fails (Internal) if the state is still not exact.
//  - remove() leaves no trace of ours: afterwards the netns equals its state before install(), where
//    "equal" is IptablesSave::normalized_lines() (a table left empty counts as absent), `nft list ruleset`,
//    `ip rule` and `ip route show table <route_table>`. Absent pieces are not errors.
//  - Options must be the same for install/verify/remove of one pod; in particular with ipv6 = false the IPv6
//    side is neither read nor cleaned.
//  - Thread-safe; calls for different pods may run concurrently. Each call blocks for a few tool runs
//    (each bounded by CommandLimits), so call it off the data-plane threads.
// Needs CAP_NET_ADMIN and CAP_SYS_ADMIN (setns in the child processes; unshare for the scratch netns).
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cni/rules/command_runner.h"
#include "cni/rules/rule_options.h"
#include "common/base/result.h"

namespace ambient::cni {

// Which packet-filter tool owns the redirection.
enum class Backend : std::uint8_t {
  Iptables,  // iptables-restore/-save (and ip6tables-*), chains ISTIO_PRERT / ISTIO_OUTPUT
  Nftables,  // nft -f -, inet tables istio-ambient-{nat,mangle,raw} (Istio NATIVE_NFTABLES)
};

std::string_view to_string(Backend backend) noexcept;

// What verify() found.
enum class RulesPresence : std::uint8_t {
  Absent,   // nothing of ours in the netns
  Exact,    // exactly what install() would leave
  Drifted,  // some of ours, but not exactly (missing, extra or reordered pieces): install() repairs it
};

struct RulesCheck {
  static constexpr std::size_t kMaxReportedDifferences = 20;

  RulesPresence presence = RulesPresence::Absent;
  // Empty when Exact. Otherwise lines such as "missing: ipv4 nat: -A ISTIO_OUTPUT ..." or
  // "unexpected: ...", or "order differs: ..."; at most kMaxReportedDifferences plus one "... and N more".
  std::vector<std::string> differences;
};

class InpodRules {
 public:
  static constexpr std::size_t kMaxCachedOptions = 8;

  explicit InpodRules(Backend backend, CommandLimits limits = {});

  Backend backend() const noexcept { return backend_; }

  // Errors: InvalidArgument (options), or the failing command with its exit code and stderr.
  Result<void> install(int netns_fd, const RuleOptions& options);
  Result<void> remove(int netns_fd, const RuleOptions& options);
  Result<RulesCheck> verify(int netns_fd, const RuleOptions& options);

 private:
  // Our part of a netns, as read back (see the header comment). Each line starts with its origin
  // ("ipv4 nat: ", "nft: ", "ipv6 route: ").
  struct State {
    std::vector<std::string> filter;   // iptables / nft
    std::vector<std::string> routing;  // ip rule + route table
    friend bool operator==(const State&, const State&) = default;
  };

  Result<State> observe(int netns_fd, const RuleOptions& options) const;
  Result<State> expected_state(const RuleOptions& options);  // cached; computed in a scratch netns
  Result<void> apply_filter(int netns_fd, const RuleOptions& options) const;
  Result<void> remove_filter(int netns_fd, const RuleOptions& options) const;
  Result<void> add_routing(int netns_fd, const RuleOptions& options) const;
  Result<void> remove_routing(int netns_fd, const RuleOptions& options) const;

  const Backend backend_;
  const CommandLimits limits_;
  std::mutex cache_mutex_;  // guards expected_cache_; held while a scratch netns is being read
  std::vector<std::pair<RuleOptions, State>> expected_cache_;  // oldest first, at most kMaxCachedOptions
};

}  // namespace ambient::cni
