#include "common/admin/logging_handler.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "common/base/log.h"

namespace ambient::admin {

namespace {

constexpr std::string_view kDefaultLevel = "info";  // ztunnel's default filter (RUST_LOG unset)

constexpr std::string_view kUsage =
    "usage: POST /logging\t\t\t\t\t(To list current level)\n"
    "usage: POST /logging?level=<level>\t\t\t(To change global levels)\n"
    "usage: POST /logging?level=<logger>=<level>,...\t(To change specific loggers' level)\n"
    "usage: POST /logging?reset\t\t\t\t(To reset to the default level)\n"
    "\n"
    "hint: level:\ttrace|debug|info|warn|error|critical|off\n"
    "hint: logger:\tan spdlog logger name, e.g. access\n";

std::optional<spdlog::level::level_enum> parse_level(std::string_view text) {
  std::string s(text);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "trace") return spdlog::level::trace;
  if (s == "debug") return spdlog::level::debug;
  if (s == "info") return spdlog::level::info;
  if (s == "warn" || s == "warning") return spdlog::level::warn;
  if (s == "error" || s == "err") return spdlog::level::err;
  if (s == "critical") return spdlog::level::critical;
  if (s == "off") return spdlog::level::off;
  return std::nullopt;
}

std::string_view level_text(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

std::string current_levels() {
  const auto global = spdlog::get_level();
  std::vector<std::string> overrides;
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
    if (l->level() != global) overrides.push_back(fmt::format("{}={}", l->name(), level_text(l->level())));
  });
  std::sort(overrides.begin(), overrides.end());
  std::string out;
  for (const auto& o : overrides) out += o + ",";
  out += level_text(global);
  return out;
}

Response listing() { return Response::text(200, fmt::format("current log level is {}\n", current_levels())); }

Response failed(std::string_view why) {
  return Response::text(400, fmt::format("failed to set new level: {}\n\n{}", why, kUsage));
}

struct Directive {
  std::string logger;  // empty: every logger
  spdlog::level::level_enum level;
};

}  // namespace

Response handle_logging(const Request& req) {
  const auto level = req.query_param("level");
  const bool reset = req.query_param("reset").has_value();
  if (!level && !reset) return listing();

  // Parse and check everything first: a bad item changes nothing.
  std::vector<Directive> directives;
  if (level) {
    std::string_view rest = *level;
    if (rest.empty()) return failed("empty level");
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (item.empty()) continue;
      const auto sep = item.find_first_of("=:");
      const std::string_view name = sep == std::string_view::npos ? std::string_view() : item.substr(0, sep);
      const std::string_view lvl = sep == std::string_view::npos ? item : item.substr(sep + 1);
      const auto parsed = parse_level(lvl);
      if (!parsed) return failed(fmt::format("'{}' is not a level (trace|debug|info|warn|error|critical|off)", lvl));
      if (sep != std::string_view::npos && !spdlog::get(std::string(name))) {
        std::vector<std::string> names;
        spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { names.push_back(l->name()); });
        std::sort(names.begin(), names.end());
        return failed(fmt::format("no logger named '{}' (loggers: {})", name, fmt::join(names, ", ")));
      }
      directives.push_back(Directive{std::string(name), *parsed});
    }
  }

  if (reset) {
    if (auto r = log::set_level(kDefaultLevel); !r) return failed(r.error().message());
  }
  for (const auto& d : directives) {
    if (d.logger.empty()) {
      if (auto r = log::set_level(level_text(d.level)); !r) return failed(r.error().message());
    } else if (auto l = spdlog::get(d.logger)) {
      l->set_level(d.level);
    }
  }
  spdlog::info("new log level is {}", current_levels());
  return listing();
}

void add_logging_route(HttpServer& server) { server.route("POST", "/logging", handle_logging); }

}  // namespace ambient::admin
