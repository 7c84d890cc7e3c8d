#include "cni/rules/nftables_rules.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

namespace ambient::cni {
namespace {

// Collects "add ..." lines for one table.
class TableScript {
 public:
  explicit TableScript(std::string_view table) : table_(table) {
    line("add table inet {}", table_);
    line("flush table inet {}", table_);
  }
  void base_chain(std::string_view name, std::string_view type, std::string_view hook, int priority) {
    line("add chain inet {} {} {{ type {} hook {} priority {} ; }}", table_, name, type, hook, priority);
  }
  void chain(std::string_view name) { line("add chain inet {} {}", table_, name); }
  void rule(std::string_view chain, std::string_view body) { line("add rule inet {} {} {}", table_, chain, body); }
  std::string take() { return std::move(text_); }

 private:
  template <typename... Args>
  void line(fmt::format_string<Args...> f, Args&&... args) {
    fmt::format_to(std::back_inserter(text_), f, std::forward<Args>(args)...);
    text_ += '\n';
  }
  std::string table_;
  std::string text_;
};

}  // namespace

std::string nftables_script(const RuleOptions& o) {
  const std::string v4_snat = canonical_probe_snat_ipv4(o);
  const std::string v6_snat = canonical_probe_snat_ipv6(o);
  const std::string not_ours = fmt::format("mark and 0x{:x} != 0x{:x}", o.mark_mask, o.packet_mark);
  const std::string is_tproxy = fmt::format("mark and 0x{:x} == 0x{:x}", o.mark_mask, o.tproxy_mark);
  // Adds render("ip", v4 loopback, v4 SNAT) and, with ipv6, its ip6 twin right after it.
  auto per_family = [&](TableScript& t, std::string_view chain, auto render) {
    t.rule(chain, render("ip", "127.0.0.1/32", v4_snat));
    if (o.ipv6) t.rule(chain, render("ip6", "::1/128", v6_snat));
  };

  TableScript nat("istio-ambient-nat");
  nat.base_chain("prerouting", "nat", "prerouting", -100);
  const std::string syn = o.syn_only ? " tcp flags & (fin | syn | rst | ack) == syn" : "";  // RuleOptions::syn_only
  nat.base_chain("output", "nat", "output", -100);
  nat.chain("istio-prerouting");
  nat.chain("istio-output");
  nat.rule("output", "jump istio-output");
  nat.rule("prerouting", "jump istio-prerouting");
  for (const auto& interface : o.virtual_interfaces) {
    nat.rule("istio-prerouting", fmt::format("iifname {} meta l4proto tcp{} counter redirect to :{}", interface, syn,
                                             o.outbound_port));
    nat.rule("istio-prerouting", fmt::format("iifname {} meta l4proto tcp counter return", interface));
  }
  if (!o.ingress_mode) {
    per_family(nat, "istio-prerouting", [&](auto ip, auto, auto snat) {
      return fmt::format("meta l4proto tcp {} saddr {} counter accept", ip, snat);
    });
  }
  per_family(nat, "istio-output", [&](auto ip, auto, auto snat) {
    return fmt::format("meta l4proto tcp {} daddr {} counter accept", ip, snat);
  });
  if (!o.ingress_mode) {
    per_family(nat, "istio-prerouting", [&](auto ip, auto loopback, auto) {
      return fmt::format("{} daddr != {} tcp dport != {}{} {} counter redirect to :{}", ip, loopback,
                         o.inbound_hbone_port, syn, not_ours, o.inbound_plaintext_port);
    });
  }
  if (o.dns_capture) {
    nat.rule("istio-output", fmt::format("oifname != lo {} udp dport 53 counter redirect to :{}", not_ours, o.dns_port));
    per_family(nat, "istio-output", [&](auto ip, auto loopback, auto) {
      return fmt::format("{} daddr != {} tcp dport 53{} {} counter redirect to :{}", ip, loopback, syn, not_ours, o.dns_port);
    });
  }
  nat.rule("istio-output", fmt::format("meta l4proto tcp {} counter accept", is_tproxy));
  per_family(nat, "istio-output", [&](auto ip, auto loopback, auto) {
    return fmt::format("oifname lo {} daddr != {} counter accept", ip, loopback);
  });
  per_family(nat, "istio-output", [&](auto ip, auto loopback, auto) {
    return fmt::format("meta l4proto tcp{} {} daddr != {} {} counter redirect to :{}", syn, ip, loopback, not_ours,
                       o.outbound_port);
  });

  TableScript mangle("istio-ambient-mangle");
  mangle.base_chain("prerouting", "filter", "prerouting", -150);
  mangle.base_chain("output", "route", "output", -150);
  mangle.chain("istio-prerouting");
  mangle.chain("istio-output");
  mangle.rule("prerouting", "jump istio-prerouting");
  mangle.rule("output", "jump istio-output");
  // Kept in ingress mode too, as in the iptables variant.
  mangle.rule("istio-prerouting", fmt::format("meta mark & 0x{:x} == 0x{:x} counter ct mark set ct mark & 0x{:x} | 0x{:x}",
                                              o.mark_mask, o.packet_mark, ~o.mark_mask, o.tproxy_mark));
  mangle.rule("istio-output", fmt::format("ct mark and 0x{:x} == 0x{:x} counter meta mark set ct mark", o.mark_mask,
                                          o.tproxy_mark));

  std::string out = nat.take() + mangle.take();
  if (o.dns_capture) {
    TableScript raw("istio-ambient-raw");
    raw.base_chain("prerouting", "filter", "prerouting", -300);
    raw.base_chain("output", "filter", "output", -300);
    raw.chain("istio-prerouting");
    raw.chain("istio-output");
    raw.rule("prerouting", "jump istio-prerouting");
    raw.rule("output", "jump istio-output");
    raw.rule("istio-output", fmt::format("udp dport 53 meta mark and 0x{:x} == 0x{:x} counter ct zone set 1",
                                         o.mark_mask, o.packet_mark));
    raw.rule("istio-prerouting", fmt::format("udp sport 53 meta mark and 0x{:x} != 0x{:x} counter ct zone set 1",
                                             o.mark_mask, o.packet_mark));
    out += raw.take();
  }
  return out;
}

std::string nftables_removal_script() {
  std::string out;
  for (auto table : kNftTables) out += fmt::format("add table inet {}\ndelete table inet {}\n", table, table);
  return out;
}

std::vector<std::string> nftables_our_lines(std::string_view dump) {
  std::vector<std::string> out;
  bool inside = false;
  while (!dump.empty()) {
    auto end = dump.find('\n');
    std::string_view line = dump.substr(0, end);
    dump = end == std::string_view::npos ? std::string_view() : dump.substr(end + 1);
    const bool top_level = !line.empty() && line.front() != '\t' && line.front() != ' ';
    if (top_level && line.starts_with("table ")) {
      inside = std::any_of(kNftTables.begin(), kNftTables.end(), [&](std::string_view t) {
        return line == fmt::format("table inet {} {{", t);
      });
    }
    while (!line.empty() && (line.front() == '\t' || line.front() == ' ')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
    if (inside && !line.empty()) out.emplace_back(line);
    if (top_level && line == "}") inside = false;
  }
  return out;
}

}  // namespace ambient::cni
