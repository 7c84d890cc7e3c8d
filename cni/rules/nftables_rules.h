#pragma once
// Pure generation of the in-pod nftables rules (Istio NATIVE_NFTABLES=true, cni/pkg/nftables, golden
// testdata/*.golden): one `nft -f -` script. No I/O.
//
// Three inet tables, istio-ambient-nat / -mangle / -raw (raw only with DNS capture). Each is added and
// flushed as a whole at the top of its section, so applying the script twice leaves the same state and a
// table never holds a mix of old and new rules (nft applies a script as one transaction). Each table has
// base chains `prerouting` and `output` that jump to regular chains `istio-prerouting` / `istio-output`.
// With ipv6 every address-specific rule is followed by its ip6 twin (inet tables see both families).
//
// Differences from Istio's golden text: single spaces (the goldens have a stray double space in two rules);
// the content is otherwise equal.
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "cni/rules/rule_options.h"

namespace ambient::cni {

inline constexpr std::array<std::string_view, 3> kNftTables{"istio-ambient-nat", "istio-ambient-mangle",
                                                            "istio-ambient-raw"};

// The install script. Precondition: validate(options) succeeded.
std::string nftables_script(const RuleOptions& options);

// Deletes all three tables whether or not they exist ("add table" then "delete table": no error if absent).
std::string nftables_removal_script();

// Our part of an `nft -s list ruleset` dump: the lines of the blocks "table inet istio-ambient-* { ... }",
// trimmed, blank lines dropped, in dump order.
std::vector<std::string> nftables_our_lines(std::string_view ruleset_dump);

}  // namespace ambient::cni
