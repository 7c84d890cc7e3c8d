#include "cni/rules/iptables_save.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "cni/rules/iptables_rules.h"

namespace ambient::cni {
namespace {

constexpr std::array<std::string_view, 3> kOurTables{"mangle", "nat", "raw"};

bool is_our_table(std::string_view table) {
  return std::find(kOurTables.begin(), kOurTables.end(), table) != kOurTables.end();
}
bool is_our_chain(std::string_view chain) { return chain == kPreroutingChain || chain == kOutputChain; }

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    if (j > i) words.push_back(line.substr(i, j - i));
    i = j;
  }
  return words;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

// ":NAME POLICY [p:b]" -> ":NAME POLICY".
std::string without_counters(std::string_view chain_line) {
  auto words = split_words(chain_line);
  std::string out(words.empty() ? std::string_view() : words[0]);
  if (words.size() > 1) fmt::format_to(std::back_inserter(out), " {}", words[1]);
  return out;
}

// For ":NAME POLICY": NAME.
std::string_view declared_name(std::string_view chain_line) {
  auto words = split_words(chain_line.substr(chain_line.empty() ? 0 : 1));
  return words.empty() ? std::string_view() : words[0];
}

// For "-A CHAIN ...": CHAIN.
std::string_view appended_chain(std::string_view rule_line) {
  auto words = split_words(rule_line);
  return words.size() > 1 ? words[1] : std::string_view();
}

bool jumps_to_our_chain(std::string_view rule_line) {
  auto words = split_words(rule_line);
  for (std::size_t i = 0; i + 1 < words.size(); ++i) {
    if ((words[i] == "-j" || words[i] == "-g") && is_our_chain(words[i + 1])) return true;
  }
  return false;
}

bool is_empty_table(const IptablesSave::Table& table) {
  if (!table.rule_lines.empty()) return false;
  return std::all_of(table.chain_lines.begin(), table.chain_lines.end(), [](const std::string& line) {
    auto words = split_words(line);
    return words.size() >= 2 && words[1] == "ACCEPT";  // built-in with policy ACCEPT; user chains have "-"
  });
}

}  // namespace

IptablesSave IptablesSave::parse(std::string_view dump) {
  IptablesSave save;
  Table* current = nullptr;
  while (!dump.empty()) {
    auto end = dump.find('\n');
    auto line = trim(dump.substr(0, end));
    dump = end == std::string_view::npos ? std::string_view() : dump.substr(end + 1);
    if (line.empty() || line.front() == '#') continue;
    if (line.front() == '*') {
      save.tables_.push_back(Table{std::string(trim(line.substr(1))), {}, {}});
      current = &save.tables_.back();
    } else if (current == nullptr) {
      continue;
    } else if (line.front() == ':' && line.size() > 1) {
      current->chain_lines.push_back(without_counters(line));
    } else if (line.starts_with("-A ")) {
      current->rule_lines.emplace_back(line);
    }
  }
  return save;
}

std::vector<std::string> IptablesSave::our_lines() const {
  std::vector<std::string> out;
  for (const auto& table : tables_) {
    if (!is_our_table(table.name)) continue;
    for (const auto& line : table.chain_lines) {
      if (is_our_chain(declared_name(line))) out.push_back(fmt::format("{}: {}", table.name, line));
    }
    for (const auto& line : table.rule_lines) {
      if (is_our_chain(appended_chain(line)) || jumps_to_our_chain(line)) {
        out.push_back(fmt::format("{}: {}", table.name, line));
      }
    }
  }
  return out;
}

std::string IptablesSave::removal_input() const {
  std::string out;
  for (const auto& table : tables_) {
    if (!is_our_table(table.name)) continue;
    std::string section;
    for (const auto& line : table.rule_lines) {
      if (!is_our_chain(appended_chain(line)) && jumps_to_our_chain(line)) {
        section += "-D " + line.substr(3) + "\n";
      }
    }
    std::vector<std::string_view> chains;
    for (const auto& line : table.chain_lines) {
      if (is_our_chain(declared_name(line))) chains.push_back(declared_name(line));
    }
    for (auto chain : chains) section += fmt::format("-F {}\n", chain);  // flush all before any -X
    for (auto chain : chains) section += fmt::format("-X {}\n", chain);
    if (!section.empty()) out += fmt::format("* {}\n{}COMMIT\n", table.name, section);
  }
  return out;
}

std::vector<std::string> IptablesSave::normalized_lines() const {
  std::vector<std::string> out;
  for (const auto& table : tables_) {
    if (is_empty_table(table)) continue;
    out.push_back("*" + table.name);
    out.insert(out.end(), table.chain_lines.begin(), table.chain_lines.end());
    out.insert(out.end(), table.rule_lines.begin(), table.rule_lines.end());
    out.push_back("COMMIT");
  }
  return out;
}

}  // namespace ambient::cni
