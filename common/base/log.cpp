#include "common/base/log.h"

#include <algorithm>
#include <cctype>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace ambient::log {

namespace {
Result<spdlog::level::level_enum> parse_level(std::string_view text) {
  std::string s(text);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "warn") s = "warning";  // spdlog's names are "warning" and "error"
  if (s == "err") s = "error";
  for (int i = 0; i < spdlog::level::n_levels; ++i) {
    auto lvl = static_cast<spdlog::level::level_enum>(i);
    if (spdlog::level::to_string_view(lvl) == s) return lvl;
  }
  return errorf(ErrorKind::InvalidArgument,
                "log level '{}' is not one of trace, debug, info, warn, error, critical, off", text);
}
}  // namespace

Result<void> init(std::string_view level) {
  auto lvl = parse_level(level);
  if (!lvl) return std::move(lvl).error();
  static bool installed = false;
  if (!installed) {
    auto logger = spdlog::stderr_color_mt("ambient");
    spdlog::set_default_logger(logger);
    // 2024-04-11T15:38:42.182974Z  INFO message (istio's shape)
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%5l%$ %v", spdlog::pattern_time_type::utc);
    installed = true;
  }
  spdlog::set_level(*lvl);
  return ok();
}

Result<void> set_level(std::string_view level) {
  auto lvl = parse_level(level);
  if (!lvl) return std::move(lvl).error();
  spdlog::set_level(*lvl);
  return ok();
}

std::string_view level_name() {
  auto sv = spdlog::level::to_string_view(spdlog::get_level());
  return {sv.data(), sv.size()};
}

}  // namespace ambient::log
