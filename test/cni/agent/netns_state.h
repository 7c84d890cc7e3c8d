#pragma once
// What enrollment adds to a pod's netns and unenrollment must take away again, as one text: the iptables rules
// (iptables-save: counters and comments dropped, empty tables as absent), the policy-routing rules and every
// route table. Shared by the node agent's end-to-end tests.
#include <doctest/doctest.h>

#include <string>

#include "cni/rules/command_runner.h"
#include "cni/rules/iptables_save.h"

namespace ambient::test {

inline std::string netns_state(int netns_fd) {
  std::string out;
  auto save = cni::run_in_netns(netns_fd, cni::Command{{"iptables-save"}, ""});
  REQUIRE(save);
  for (const auto& line : cni::IptablesSave::parse(save->out).normalized_lines()) out += line + "\n";
  auto rules = cni::run_in_netns(netns_fd, cni::Command{{"ip", "-4", "rule"}, ""});
  REQUIRE(rules);
  out += rules->out;
  auto routes = cni::run_in_netns(netns_fd, cni::Command{{"ip", "-4", "route", "show", "table", "all"}, ""});
  REQUIRE(routes);
  out += routes->out;
  return out;
}

}  // namespace ambient::test
