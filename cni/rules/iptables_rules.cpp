#include "cni/rules/iptables_rules.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

namespace ambient::cni {
namespace {

// One "-A <chain> <spec>" line of a table section.
struct AppendRule {
  std::string chain;
  std::string spec;
};

struct TableSection {
  std::string table;
  std::vector<AppendRule> rules;
};

bool is_our_chain(std::string_view chain) { return chain == kPreroutingChain || chain == kOutputChain; }

// Our chains in the order Istio declares them: first rule appended to the chain, then jump-only chains.
std::vector<std::string> declared_chains(const TableSection& section) {
  std::vector<std::string> chains;
  auto add = [&](std::string_view chain) {
    if (std::find(chains.begin(), chains.end(), chain) == chains.end()) chains.emplace_back(chain);
  };
  for (const auto& rule : section.rules) {
    if (is_our_chain(rule.chain)) add(rule.chain);
  }
  for (const auto& rule : section.rules) {
    for (auto chain : {kPreroutingChain, kOutputChain}) {
      if (rule.spec == fmt::format("-j {}", chain)) add(chain);
    }
  }
  return chains;
}

void render(const TableSection& section, std::string& out) {
  out += fmt::format("* {}\n", section.table);
  for (const auto& chain : declared_chains(section)) out += fmt::format("-N {}\n", chain);
  for (const auto& rule : section.rules) out += fmt::format("-A {} {}\n", rule.chain, rule.spec);
  out += "COMMIT\n";
}

}  // namespace

std::string_view iptables_restore_binary(IptablesFamily family) {
  return family == IptablesFamily::V4 ? "iptables-restore" : "ip6tables-restore";
}

std::string_view iptables_save_binary(IptablesFamily family) {
  return family == IptablesFamily::V4 ? "iptables-save" : "ip6tables-save";
}

std::string iptables_restore_input(const RuleOptions& o, IptablesFamily family) {
  const bool v4 = family == IptablesFamily::V4;
  const std::string loopback = v4 ? "127.0.0.1/32" : "::1/128";
  const std::string snat = v4 ? canonical_probe_snat_ipv4(o) : canonical_probe_snat_ipv6(o);
  const std::string mark = fmt::format("0x{:x}/0x{:x}", o.packet_mark, o.mark_mask);
  const std::string tproxy = fmt::format("0x{:x}/0x{:x}", o.tproxy_mark, o.mark_mask);
  const std::string prert(kPreroutingChain);
  const std::string output(kOutputChain);

  TableSection mangle{"mangle", {}};
  mangle.rules.push_back({"PREROUTING", "-j " + prert});
  mangle.rules.push_back({"OUTPUT", "-j " + output});
  // Kept in ingress mode too: inbound HBONE replies still need the connmark (istio/istio#58546).
  mangle.rules.push_back({prert, fmt::format("-m mark --mark {} -j CONNMARK --set-xmark {}", mark, tproxy)});
  mangle.rules.push_back({output, fmt::format("-m connmark --mark {} -j CONNMARK --restore-mark --nfmask 0xffffffff "
                                              "--ctmask 0xffffffff", tproxy)});

  const std::string syn = o.syn_only ? " --syn" : "";  // see RuleOptions::syn_only
  TableSection nat{"nat", {}};
  nat.rules.push_back({"OUTPUT", "-j " + output});
  nat.rules.push_back({"PREROUTING", "-j " + prert});
  for (const auto& interface : o.virtual_interfaces) {
    nat.rules.push_back({prert, fmt::format("-i {} -p tcp{} -j REDIRECT --to-ports {}", interface, syn, o.outbound_port)});
    nat.rules.push_back({prert, fmt::format("-i {} -p tcp -j RETURN", interface)});
  }
  if (!o.ingress_mode) nat.rules.push_back({prert, fmt::format("-s {} -p tcp -m tcp -j ACCEPT", snat)});
  nat.rules.push_back({output, fmt::format("-d {} -p tcp -m tcp -j ACCEPT", snat)});
  if (!o.ingress_mode) {
    nat.rules.push_back({prert, fmt::format("! -d {} -p tcp{} ! --dport {} -m mark ! --mark {} -j REDIRECT --to-ports {}",
                                            loopback, syn, o.inbound_hbone_port, mark, o.inbound_plaintext_port)});
  }
  if (o.dns_capture) {
    nat.rules.push_back({output, fmt::format("! -o lo -p udp -m mark ! --mark {} -m udp --dport 53 -j REDIRECT "
                                             "--to-port {}", mark, o.dns_port)});
    nat.rules.push_back({output, fmt::format("! -d {} -p tcp{} --dport 53 -m mark ! --mark {} -j REDIRECT --to-ports {}",
                                             loopback, syn, mark, o.dns_port)});
  }
  nat.rules.push_back({output, fmt::format("-p tcp -m mark --mark {} -j ACCEPT", tproxy)});
  nat.rules.push_back({output, fmt::format("! -d {} -o lo -j ACCEPT", loopback)});
  nat.rules.push_back({output, fmt::format("! -d {} -p tcp{} -m mark ! --mark {} -j REDIRECT --to-ports {}", loopback,
                                           syn, mark, o.outbound_port)});

  std::string out;
  render(mangle, out);
  render(nat, out);
  if (o.dns_capture) {
    // Conntrack zone 1 keeps the DNS proxy's upstream queries apart from the app's (istio/istio#33469).
    TableSection raw{"raw", {}};
    raw.rules.push_back({"PREROUTING", "-j " + prert});
    raw.rules.push_back({"OUTPUT", "-j " + output});
    raw.rules.push_back({output, fmt::format("-p udp -m mark --mark {} -m udp --dport 53 -j CT --zone 1", mark)});
    raw.rules.push_back({prert, fmt::format("-p udp -m mark ! --mark {} -m udp --sport 53 -j CT --zone 1", mark)});
    render(raw, out);
  }
  return out;
}

}  // namespace ambient::cni
