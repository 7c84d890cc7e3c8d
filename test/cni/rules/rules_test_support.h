#pragma once
// Helpers for the cni/rules tests: a temporary named netns (RAII), a snapshot of everything our rules could
// touch in it, and visible root-only skips.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "cni/rules/command_runner.h"
#include "cni/rules/iptables_save.h"
#include "test/common/net/net_test_support.h"
#include "test/support/paths.h"

namespace ambient::cni::rules_test {

using ambient::test::needs_root;  // prints SKIPPED with the reason

// Runs a command in the caller's netns; the exit code, or -1 if it could not run.
inline int run(std::vector<std::string> argv, std::string stdin_text = {}) {
  auto r = run_in_netns(-1, Command{std::move(argv), std::move(stdin_text)});
  return r ? r->exit_code : -1;
}

// test::TempNetns (named, lo up, deleted on destruction) plus stdin and captured output for the rules tools.
class TempNetns : public ambient::test::TempNetns {
 public:
  // `ip netns exec <name> argv...` with `stdin_text`: exit code.
  int exec(std::vector<std::string> argv, std::string stdin_text = {}) const {
    argv.insert(argv.begin(), {"ip", "netns", "exec", name()});
    return run(std::move(argv), std::move(stdin_text));
  }
  // stdout of `ip netns exec <name> argv...` ("<exit N>: stderr" if it failed, so a diff shows it). A route
  // table that does not exist reads as empty (the kernel creates it on the first route; same meaning).
  std::string output(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"ip", "netns", "exec", name()});
    auto r = run_in_netns(-1, Command{argv, {}});
    if (!r) return "<error " + r.error().message() + ">";
    if (r->exit_code != 0 && r->err.find("FIB table does not exist") != std::string::npos) return "";
    if (r->exit_code != 0) return "<exit " + std::to_string(r->exit_code) + ": " + r->err + ">";
    return r->out;
  }
};

// `nft -s list ruleset` without the tables iptables-nft manages (ip/ip6 filter, nat, mangle, raw, security):
// those are compared through iptables-save, whose output does not depend on the order chains were created in.
inline std::string without_xtables_tables(const std::string& ruleset) {
  std::string out;
  bool skipping = false;
  std::size_t start = 0;
  while (start < ruleset.size()) {
    auto end = ruleset.find('\n', start);
    if (end == std::string::npos) end = ruleset.size();
    const std::string line = ruleset.substr(start, end - start);
    start = end + 1;
    if (line.starts_with("table ")) {
      skipping = false;
      for (const char* family : {"ip", "ip6"}) {
        for (const char* table : {"filter", "nat", "mangle", "raw", "security"}) {
          if (line == std::string("table ") + family + " " + table + " {") skipping = true;
        }
      }
    }
    if (!skipping) out += line + "\n";
    if (line == "}") skipping = false;
  }
  return out;
}

// Everything install() may change, normalized: iptables-save (both families; see
// IptablesSave::normalized_lines), `nft -s list ruleset` (other tables), ip rules and table 100, both families.
inline std::vector<std::string> snapshot(const TempNetns& ns) {
  std::vector<std::string> out;
  for (const char* save : {"iptables-save", "ip6tables-save"}) {
    out.push_back(std::string("== ") + save);
    for (auto& line : IptablesSave::parse(ns.output({save})).normalized_lines()) out.push_back(line);
  }
  auto add_text = [&](const std::string& title, const std::string& text) {
    out.push_back("== " + title);
    std::size_t start = 0;
    while (start < text.size()) {
      auto end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(start, end - start);
      while (!line.empty() && line.back() == ' ') line.pop_back();
      if (!line.empty()) out.push_back(line);
      start = end + 1;
    }
  };
  add_text("nft", without_xtables_tables(ns.output({"nft", "-s", "list", "ruleset"})));
  add_text("ip -4 rule", ns.output({"ip", "-4", "rule", "show"}));
  add_text("ip -6 rule", ns.output({"ip", "-6", "rule", "show"}));
  add_text("ip -4 route table 100", ns.output({"ip", "-4", "route", "show", "table", "100"}));
  add_text("ip -6 route table 100", ns.output({"ip", "-6", "route", "show", "table", "100"}));
  return out;
}

}  // namespace ambient::cni::rules_test
