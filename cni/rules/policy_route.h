#pragma once
// Pure generation of the policy routing that returns ztunnel's spoofed-source replies to ztunnel: in the pod
// netns, `ip rule add fwmark <tproxy>/<mask> pref <priority> lookup <table>` and
// `ip route add local 0.0.0.0/0 dev lo table <table>` (IPv6 too when enabled). No I/O.
// Table <route_table> is ours: everything in it is our state.
#include <vector>

#include "cni/rules/command.h"
#include "cni/rules/rule_options.h"

namespace ambient::cni {

// IPv4 first, then IPv6 when options.ipv6: rule, route. Precondition: validate(options) succeeded.
std::vector<Command> policy_route_add_commands(const RuleOptions& options);
// The same entries with "del"; in the same order.
std::vector<Command> policy_route_delete_commands(const RuleOptions& options);
// Commands whose stdout is the current state: `ip [-6] rule show`, `ip [-6] route show table <table>`.
std::vector<Command> policy_route_show_commands(const RuleOptions& options);

}  // namespace ambient::cni
