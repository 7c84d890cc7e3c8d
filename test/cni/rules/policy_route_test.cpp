#include <doctest/doctest.h>

#include "cni/rules/policy_route.h"

using namespace ambient::cni;

namespace {
std::vector<std::string> described(const std::vector<Command>& commands) {
  std::vector<std::string> out;
  for (const auto& c : commands) out.push_back(describe(c));
  return out;
}
}  // namespace

TEST_SUITE("cni/rules/policy_route") {
  TEST_CASE("IPv4: Istio's ip rule and local route in table 100") {
    const std::vector<std::string> add{"ip rule add fwmark 0x111/0xfff pref 32764 lookup 100",
                                       "ip route add local 0.0.0.0/0 dev lo table 100"};
    const std::vector<std::string> del{"ip rule del fwmark 0x111/0xfff pref 32764 lookup 100",
                                       "ip route del local 0.0.0.0/0 dev lo table 100"};
    CHECK(described(policy_route_add_commands(RuleOptions{})) == add);
    CHECK(described(policy_route_delete_commands(RuleOptions{})) == del);
    CHECK(described(policy_route_show_commands(RuleOptions{})) ==
          std::vector<std::string>{"ip -4 rule show", "ip -4 route show table 100"});
  }

  TEST_CASE("IPv6 adds the ::/0 twin; other values are used") {
    RuleOptions o;
    o.ipv6 = true;
    o.route_table = 133;
    o.rule_priority = 30000;
    o.tproxy_mark = 0x222;
    const std::vector<std::string> add{"ip rule add fwmark 0x222/0xfff pref 30000 lookup 133",
                                       "ip route add local 0.0.0.0/0 dev lo table 133",
                                       "ip -6 rule add fwmark 0x222/0xfff pref 30000 lookup 133",
                                       "ip -6 route add local ::/0 dev lo table 133"};
    CHECK(described(policy_route_add_commands(o)) == add);
    CHECK(policy_route_delete_commands(o).size() == 4);
    CHECK(policy_route_show_commands(o).size() == 4);
  }
}
