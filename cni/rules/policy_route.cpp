#include "cni/rules/policy_route.h"

#include <string>

#include <fmt/format.h>

namespace ambient::cni {
namespace {

std::vector<Command> commands(const RuleOptions& o, const std::string& verb) {
  const std::string fwmark = fmt::format("0x{:x}/0x{:x}", o.tproxy_mark, o.mark_mask);
  const std::string priority = std::to_string(o.rule_priority);
  const std::string table = std::to_string(o.route_table);
  std::vector<Command> out;
  out.push_back({{"ip", "rule", verb, "fwmark", fwmark, "pref", priority, "lookup", table}, {}});
  out.push_back({{"ip", "route", verb, "local", "0.0.0.0/0", "dev", "lo", "table", table}, {}});
  if (o.ipv6) {
    out.push_back({{"ip", "-6", "rule", verb, "fwmark", fwmark, "pref", priority, "lookup", table}, {}});
    out.push_back({{"ip", "-6", "route", verb, "local", "::/0", "dev", "lo", "table", table}, {}});
  }
  return out;
}

}  // namespace

std::vector<Command> policy_route_add_commands(const RuleOptions& o) { return commands(o, "add"); }
std::vector<Command> policy_route_delete_commands(const RuleOptions& o) { return commands(o, "del"); }

std::vector<Command> policy_route_show_commands(const RuleOptions& o) {
  const std::string table = std::to_string(o.route_table);
  std::vector<Command> out;
  out.push_back({{"ip", "-4", "rule", "show"}, {}});
  out.push_back({{"ip", "-4", "route", "show", "table", table}, {}});
  if (o.ipv6) {
    out.push_back({{"ip", "-6", "rule", "show"}, {}});
    out.push_back({{"ip", "-6", "route", "show", "table", table}, {}});
  }
  return out;
}

}  // namespace ambient::cni
