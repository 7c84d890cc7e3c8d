#include "cni/rules/rule_options.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <set>

namespace ambient::cni {
namespace {

Error invalid(std::string_view field, std::string_view why) {
  return errorf(ErrorKind::InvalidArgument, "rule options: {} {}", field, why);
}

bool is_interface_name(const std::string& name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
}

// Canonical text of `text` parsed as `family`, or "" if it does not parse.
std::string canonical_address(int family, const std::string& text) {
  std::array<unsigned char, 16> bytes{};
  if (::inet_pton(family, text.c_str(), bytes.data()) != 1) return {};
  std::array<char, INET6_ADDRSTRLEN> out{};
  if (::inet_ntop(family, bytes.data(), out.data(), out.size()) == nullptr) return {};
  return std::string(out.data());
}

Result<void> validate_mark(std::string_view field, std::uint32_t mark, std::uint32_t mask) {
  if (mark == 0) return invalid(field, "is 0 (a zero mark matches every unmarked packet)");
  if ((mark & ~mask) != 0) {
    return invalid(field, fmt::format("0x{:x} has bits outside mark_mask 0x{:x}", mark, mask));
  }
  return ok();
}

}  // namespace

Result<void> validate(const RuleOptions& o) {
  if (o.mark_mask == 0) return invalid("mark_mask", "is 0");
  AMBIENT_TRY(validate_mark("packet_mark", o.packet_mark, o.mark_mask));
  AMBIENT_TRY(validate_mark("tproxy_mark", o.tproxy_mark, o.mark_mask));
  if (o.packet_mark == o.tproxy_mark) {
    return invalid("tproxy_mark", fmt::format("0x{:x} equals packet_mark", o.tproxy_mark));
  }

  const std::array<std::pair<std::string_view, std::uint16_t>, 4> ports{{
      {"outbound_port", o.outbound_port},
      {"inbound_plaintext_port", o.inbound_plaintext_port},
      {"inbound_hbone_port", o.inbound_hbone_port},
      {"dns_port", o.dns_port},
  }};
  for (std::size_t i = 0; i < ports.size(); ++i) {
    if (ports[i].second == 0) return invalid(ports[i].first, "is 0");
    for (std::size_t j = 0; j < i; ++j) {
      if (ports[i].second == ports[j].second) {
        return invalid(ports[i].first, fmt::format("{} is also {}", ports[i].second, ports[j].first));
      }
    }
  }

  if (canonical_address(AF_INET, o.probe_snat_ipv4).empty()) {
    return invalid("probe_snat_ipv4", fmt::format("\"{}\" is not an IPv4 address", o.probe_snat_ipv4));
  }
  if (canonical_address(AF_INET6, o.probe_snat_ipv6).empty()) {
    return invalid("probe_snat_ipv6", fmt::format("\"{}\" is not an IPv6 address", o.probe_snat_ipv6));
  }

  if (o.virtual_interfaces.size() > RuleOptions::kMaxVirtualInterfaces) {
    return invalid("virtual_interfaces", fmt::format("has {} entries (at most {})", o.virtual_interfaces.size(),
                                                     RuleOptions::kMaxVirtualInterfaces));
  }
  std::set<std::string_view> seen;
  for (std::size_t i = 0; i < o.virtual_interfaces.size(); ++i) {
    const auto& name = o.virtual_interfaces[i];
    const auto field = fmt::format("virtual_interfaces[{}]", i);
    if (!is_interface_name(name)) {
      return invalid(field, fmt::format("\"{}\" is not an interface name (1-15 of [A-Za-z0-9_.-])", name));
    }
    if (!seen.insert(name).second) return invalid(field, fmt::format("\"{}\" is listed twice", name));
  }

  if (o.route_table == 0 || (o.route_table >= 253 && o.route_table <= 255)) {
    return invalid("route_table", fmt::format("{} is reserved (0, 253 default, 254 main, 255 local)", o.route_table));
  }
  if (o.rule_priority == 0 || o.rule_priority > 32765) {
    return invalid("rule_priority", fmt::format("{} is outside 1..32765 (0, 32766, 32767 are the kernel's)",
                                                o.rule_priority));
  }
  return ok();
}

std::string canonical_probe_snat_ipv4(const RuleOptions& o) { return canonical_address(AF_INET, o.probe_snat_ipv4); }
std::string canonical_probe_snat_ipv6(const RuleOptions& o) { return canonical_address(AF_INET6, o.probe_snat_ipv6); }

}  // namespace ambient::cni
