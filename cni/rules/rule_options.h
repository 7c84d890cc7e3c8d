#pragma once
// RuleOptions: everything the in-pod redirection rules depend on (Istio cni/pkg/config, InpodMark etc.).
// The defaults are Istio's; a value-initialised RuleOptions produces Istio's default golden rules.
//
// Invariants after validate() succeeded:
//  - marks are non-zero, fit inside mark_mask, and packet_mark != tproxy_mark;
//  - the four ports are non-zero and distinct;
//  - the probe SNAT addresses parse as IPv4 / IPv6;
//  - every virtual interface name is 1..15 characters of [A-Za-z0-9_.-] (so it is safe to paste into an
//    iptables-restore or nft script), not "." or "..", with no duplicates, at most kMaxVirtualInterfaces;
//  - route_table is not 0 or a reserved table (253 default, 254 main, 255 local); 1 <= rule_priority <= 32765.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/base/result.h"

namespace ambient::cni {

struct RuleOptions {
  static constexpr std::size_t kMaxVirtualInterfaces = 64;

  std::uint32_t packet_mark = 0x539;   // SO_MARK on every socket ztunnel opens in the pod (1337)
  std::uint32_t mark_mask = 0xfff;     // bits of the packet/conn mark that belong to us
  std::uint32_t tproxy_mark = 0x111;   // connmark/fwmark of connections owned by ztunnel; routed via route_table
  std::uint16_t outbound_port = 15001;           // ztunnel outbound listener (app -> anywhere)
  std::uint16_t inbound_plaintext_port = 15006;  // ztunnel inbound passthrough listener
  std::uint16_t inbound_hbone_port = 15008;      // ztunnel HBONE listener (never redirected)
  std::uint16_t dns_port = 15053;                // ztunnel DNS proxy (UDP and TCP)
  std::string probe_snat_ipv4 = "169.254.7.127";  // source of kubelet probes after host SNAT
  std::string probe_snat_ipv6 = "fd16:9254:7127:1337:ffff:ffff:ffff:ffff";
  bool dns_capture = true;    // redirect port 53 to dns_port, and the raw-table conntrack zone rules
  bool ingress_mode = false;  // bypass inbound capture: no probe accept / 15006 redirect in PREROUTING
  std::vector<std::string> virtual_interfaces;  // traffic arriving on these is treated as outbound
  bool ipv6 = false;          // also install the IPv6 rules (ip6tables / ip6 matches) and the v6 route
  // Redirect only connections whose first packet is a SYN. A netns without nat rules has no conntrack, so
  // connections open before enrollment are picked up mid-stream by conntrack once the rules exist and would be
  // redirected (and reset). With this, they keep flowing; new ones are captured. Off = Istio's exact rules.
  bool syn_only = false;
  std::uint32_t route_table = 100;     // policy routing table holding `local default dev lo`
  std::uint32_t rule_priority = 32764; // `ip rule` preference of the fwmark rule

  friend bool operator==(const RuleOptions&, const RuleOptions&) = default;
};

// InvalidArgument naming the field and the refused value, e.g.
//   "rule options: virtual_interfaces[1] \"eth 0\" is not an interface name (1-15 of [A-Za-z0-9_.-])".
Result<void> validate(const RuleOptions& options);

// The probe SNAT addresses in canonical text form (inet_ntop); validate() first.
std::string canonical_probe_snat_ipv4(const RuleOptions& options);
std::string canonical_probe_snat_ipv6(const RuleOptions& options);

}  // namespace ambient::cni
