#pragma once
// Pure generation of the in-pod iptables rules (Istio cni/pkg/iptables, golden testdata/*.golden): the
// `iptables-restore --noflush` input for one IP family. No I/O.
//
// Shape of the output (IPv4, defaults): tables mangle, nat and (with DNS capture) raw, in that order. Each
// table section is "* <table>", the "-N" lines for our chains, the "-A" lines, then "COMMIT". Our chains are
// ISTIO_PRERT (jumped to from PREROUTING) and ISTIO_OUTPUT (jumped to from OUTPUT). The "-N" lines come in
// the order of the first rule appended to each chain, then chains that only receive the jump (this is the
// order Istio's builder emits, so the text equals the goldens byte for byte).
//
// The input creates chains with -N, so it fails if they exist: callers remove ours first (see
// iptables_save.h iptables_removal_input()).
#include <string>
#include <string_view>

#include "cni/rules/rule_options.h"

namespace ambient::cni {

// Which iptables binary family a text is for.
enum class IptablesFamily {
  V4,  // iptables-restore / iptables-save; loopback 127.0.0.1/32, probe_snat_ipv4
  V6,  // ip6tables-restore / ip6tables-save; loopback ::1/128, probe_snat_ipv6
};

inline constexpr std::string_view kPreroutingChain = "ISTIO_PRERT";
inline constexpr std::string_view kOutputChain = "ISTIO_OUTPUT";

// The iptables-restore --noflush input for `family`. Precondition: validate(options) succeeded.
std::string iptables_restore_input(const RuleOptions& options, IptablesFamily family);

// "iptables-restore" or "ip6tables-restore", and the matching "-save".
std::string_view iptables_restore_binary(IptablesFamily family);
std::string_view iptables_save_binary(IptablesFamily family);

}  // namespace ambient::cni
