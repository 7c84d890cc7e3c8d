#include "cni/rules/inpod_rules.h"

#include <algorithm>
#include <string_view>

#include <fmt/format.h>

#include "cni/rules/iptables_rules.h"
#include "cni/rules/iptables_save.h"
#include "cni/rules/nftables_rules.h"
#include "cni/rules/policy_route.h"
#include "cni/rules/scratch_netns.h"

namespace ambient::cni {
namespace {

constexpr std::string_view family_label(IptablesFamily family) {
  return family == IptablesFamily::V4 ? "ipv4" : "ipv6";
}

std::vector<IptablesFamily> families(const RuleOptions& o) {
  if (o.ipv6) return {IptablesFamily::V4, IptablesFamily::V6};
  return {IptablesFamily::V4};
}

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto end = text.find('\n');
    auto line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.remove_suffix(1);
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// An error from a step, prefixed with the operation, the backend and the netns.
Error in_step(Error e, std::string_view operation, Backend backend, int netns_fd) {
  e.context = fmt::format("{} in-pod rules ({}) in netns fd {}: {}", operation, to_string(backend), netns_fd, e.context);
  return e;
}

// iproute2's complaints (LC_ALL=C) when the rule, the route or the whole table is already gone. The kernel
// creates a FIB table on its first route and may drop it when empty: an absent table is an empty one.
bool is_absent_error(const CommandResult& r) {
  return r.err.find("No such file or directory") != std::string::npos ||
         r.err.find("No such process") != std::string::npos || r.err.find("FIB table does not exist") != std::string::npos;
}

// Multiset differences between what we expect and what is there, bounded.
std::vector<std::string> differences(const std::vector<std::string>& expected, const std::vector<std::string>& actual) {
  std::vector<std::string> sorted_expected = expected, sorted_actual = actual;
  std::sort(sorted_expected.begin(), sorted_expected.end());
  std::sort(sorted_actual.begin(), sorted_actual.end());
  std::vector<std::string> missing, unexpected, out;
  std::set_difference(sorted_expected.begin(), sorted_expected.end(), sorted_actual.begin(), sorted_actual.end(),
                      std::back_inserter(missing));
  std::set_difference(sorted_actual.begin(), sorted_actual.end(), sorted_expected.begin(), sorted_expected.end(),
                      std::back_inserter(unexpected));
  for (auto& line : missing) out.push_back("missing: " + line);
  for (auto& line : unexpected) out.push_back("unexpected: " + line);
  if (out.empty() && expected != actual) {
    for (std::size_t i = 0; i < expected.size(); ++i) {
      if (expected[i] != actual[i]) {
        out.push_back(fmt::format("order differs: expected \"{}\" at position {}, found \"{}\"", expected[i], i, actual[i]));
        break;
      }
    }
  }
  if (out.size() > RulesCheck::kMaxReportedDifferences) {
    const auto more = out.size() - RulesCheck::kMaxReportedDifferences;
    out.resize(RulesCheck::kMaxReportedDifferences);
    out.push_back(fmt::format("... and {} more", more));
  }
  return out;
}

std::vector<std::string> all_differences(const std::vector<std::string>& expected_filter,
                                         const std::vector<std::string>& actual_filter,
                                         const std::vector<std::string>& expected_routing,
                                         const std::vector<std::string>& actual_routing) {
  auto out = differences(expected_filter, actual_filter);
  auto routing = differences(expected_routing, actual_routing);
  out.insert(out.end(), routing.begin(), routing.end());
  if (out.size() > RulesCheck::kMaxReportedDifferences + 1) out.resize(RulesCheck::kMaxReportedDifferences + 1);
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += (out.empty() ? "" : "; ") + line;
  return out;
}

}  // namespace

std::string_view to_string(Backend backend) noexcept {
  return backend == Backend::Iptables ? "iptables" : "nftables";
}

InpodRules::InpodRules(Backend backend, CommandLimits limits) : backend_(backend), limits_(limits) {}

Result<InpodRules::State> InpodRules::observe(int netns_fd, const RuleOptions& o) const {
  State state;
  if (backend_ == Backend::Iptables) {
    for (auto family : families(o)) {
      auto saved = run_checked(netns_fd, {{std::string(iptables_save_binary(family))}, {}}, limits_);
      if (!saved) return std::move(saved).error();
      for (auto& line : IptablesSave::parse(saved->out).our_lines()) {
        state.filter.push_back(fmt::format("{} {}", family_label(family), line));
      }
    }
  } else {
    auto listed = run_checked(netns_fd, {{"nft", "-s", "list", "ruleset"}, {}}, limits_);
    if (!listed) return std::move(listed).error();
    for (auto& line : nftables_our_lines(listed->out)) state.filter.push_back("nft: " + line);
  }

  const std::string rule_prefix = fmt::format("{}:", o.rule_priority);
  for (const auto& show : policy_route_show_commands(o)) {
    auto shown = run_in_netns(netns_fd, show, limits_);
    if (!shown) return std::move(shown).error();
    if (shown->exit_code != 0 && is_absent_error(*shown)) continue;  // table never created: nothing of ours
    if (shown->exit_code != 0) AMBIENT_TRY(run_checked(netns_fd, show, limits_));  // for the uniform error
    const bool v6 = std::find(show.argv.begin(), show.argv.end(), "-6") != show.argv.end();
    const bool is_rule = std::find(show.argv.begin(), show.argv.end(), "rule") != show.argv.end();
    for (auto line : lines_of(shown->out)) {
      if (is_rule && !line.starts_with(rule_prefix)) continue;  // only the rule at our priority is ours
      state.routing.push_back(fmt::format("{} {}: {}", v6 ? "ipv6" : "ipv4", is_rule ? "rule" : "route", line));
    }
  }
  return state;
}

Result<InpodRules::State> InpodRules::expected_state(const RuleOptions& o) {
  std::lock_guard lock(cache_mutex_);
  for (const auto& [options, state] : expected_cache_) {
    if (options == o) return state;
  }
  auto scratch = create_scratch_netns();
  if (!scratch) return std::move(scratch).error();
  const int fd = scratch->get();
  AMBIENT_TRY(run_checked(fd, {{"ip", "link", "set", "lo", "up"}, {}}, limits_));
  AMBIENT_TRY(apply_filter(fd, o));
  AMBIENT_TRY(add_routing(fd, o));
  auto state = observe(fd, o);
  if (!state) return std::move(state).error();
  if (expected_cache_.size() >= kMaxCachedOptions) expected_cache_.erase(expected_cache_.begin());
  expected_cache_.emplace_back(o, *state);
  return state;
}

Result<void> InpodRules::apply_filter(int netns_fd, const RuleOptions& o) const {
  if (backend_ == Backend::Nftables) {
    AMBIENT_TRY(run_checked(netns_fd, {{"nft", "-f", "-"}, nftables_script(o)}, limits_));
    return ok();
  }
  for (auto family : families(o)) {
    Command restore{{std::string(iptables_restore_binary(family)), "--noflush"}, iptables_restore_input(o, family)};
    AMBIENT_TRY(run_checked(netns_fd, restore, limits_));
  }
  return ok();
}

Result<void> InpodRules::remove_filter(int netns_fd, const RuleOptions& o) const {
  if (backend_ == Backend::Nftables) {
    AMBIENT_TRY(run_checked(netns_fd, {{"nft", "-f", "-"}, nftables_removal_script()}, limits_));
    return ok();
  }
  // Delete exactly what is there (every duplicate jump too), in one atomic restore per family.
  for (auto family : families(o)) {
    auto saved = run_checked(netns_fd, {{std::string(iptables_save_binary(family))}, {}}, limits_);
    if (!saved) return std::move(saved).error();
    auto removal = IptablesSave::parse(saved->out).removal_input();
    if (removal.empty()) continue;
    AMBIENT_TRY(run_checked(netns_fd, {{std::string(iptables_restore_binary(family)), "--noflush"}, removal}, limits_));
  }
  return ok();
}

Result<void> InpodRules::add_routing(int netns_fd, const RuleOptions& o) const {
  for (const auto& add : policy_route_add_commands(o)) {
    auto added = run_in_netns(netns_fd, add, limits_);
    if (!added) return std::move(added).error();
    if (added->exit_code != 0 && added->err.find("File exists") == std::string::npos) {
      AMBIENT_TRY(run_checked(netns_fd, add, limits_));  // re-run for the uniform error text
    }
  }
  return ok();
}

Result<void> InpodRules::remove_routing(int netns_fd, const RuleOptions& o) const {
  for (const auto& del : policy_route_delete_commands(o)) {
    auto deleted = run_in_netns(netns_fd, del, limits_);
    if (!deleted) return std::move(deleted).error();
    if (deleted->exit_code != 0 && !is_absent_error(*deleted)) {
      Error e = errorf(ErrorKind::Io, "`{}` exited with {}: {}", describe(del), deleted->exit_code, deleted->err);
      e.code = deleted->exit_code;
      return e;
    }
  }
  return ok();
}

Result<void> InpodRules::install(int netns_fd, const RuleOptions& o) {
  if (auto valid = validate(o); !valid) return std::move(valid).error();
  auto run = [&]() -> Result<void> {
    auto expected = expected_state(o);
    if (!expected) return std::move(expected).error();
    auto live = observe(netns_fd, o);
    if (!live) return std::move(live).error();
    if (*live == *expected) return ok();
    // A part with nothing of ours in it (a pod enrolled for the first time) needs no removal first.
    if (live->filter != expected->filter) {
      if (!live->filter.empty()) AMBIENT_TRY(remove_filter(netns_fd, o));
      AMBIENT_TRY(apply_filter(netns_fd, o));
    }
    if (live->routing != expected->routing) {
      if (!live->routing.empty()) AMBIENT_TRY(remove_routing(netns_fd, o));
      AMBIENT_TRY(add_routing(netns_fd, o));
    }
    auto after = observe(netns_fd, o);
    if (!after) return std::move(after).error();
    if (*after != *expected) {
      return errorf(ErrorKind::Internal, "state still differs after applying (is something else editing it?): {}",
                    joined(all_differences(expected->filter, after->filter, expected->routing, after->routing)));
    }
    return ok();
  };
  auto result = run();
  if (!result) return in_step(std::move(result).error(), "install", backend_, netns_fd);
  return ok();
}

Result<void> InpodRules::remove(int netns_fd, const RuleOptions& o) {
  if (auto valid = validate(o); !valid) return std::move(valid).error();
  auto run = [&]() -> Result<void> {
    AMBIENT_TRY(remove_filter(netns_fd, o));
    AMBIENT_TRY(remove_routing(netns_fd, o));
    auto after = observe(netns_fd, o);
    if (!after) return std::move(after).error();
    if (!after->filter.empty() || !after->routing.empty()) {
      return errorf(ErrorKind::Internal, "still present after removal (is something else editing it?): {}",
                    joined(all_differences({}, after->filter, {}, after->routing)));
    }
    return ok();
  };
  auto result = run();
  if (!result) return in_step(std::move(result).error(), "remove", backend_, netns_fd);
  return ok();
}

Result<RulesCheck> InpodRules::verify(int netns_fd, const RuleOptions& o) {
  if (auto valid = validate(o); !valid) return std::move(valid).error();
  auto run = [&]() -> Result<RulesCheck> {
    auto expected = expected_state(o);
    if (!expected) return std::move(expected).error();
    auto live = observe(netns_fd, o);
    if (!live) return std::move(live).error();
    RulesCheck check;
    if (*live == *expected) {
      check.presence = RulesPresence::Exact;
    } else if (live->filter.empty() && live->routing.empty()) {
      check.presence = RulesPresence::Absent;
      check.differences = all_differences(expected->filter, {}, expected->routing, {});
    } else {
      check.presence = RulesPresence::Drifted;
      check.differences = all_differences(expected->filter, live->filter, expected->routing, live->routing);
    }
    return check;
  };
  auto result = run();
  if (!result) return in_step(std::move(result).error(), "verify", backend_, netns_fd);
  return result;
}

}  // namespace ambient::cni
