#pragma once
// Logging on spdlog. One process-wide logger; the level changes at runtime (admin /logging, tests).
// Use the spdlog macros/free functions directly: spdlog::info("..."), spdlog::warn(...).

#include <string_view>

#include <spdlog/spdlog.h>

#include "common/base/result.h"

namespace ambient::log {

// Installs the stderr logger with the project's pattern. `level` as in set_level. Safe to call twice.
Result<void> init(std::string_view level = "info");

// Accepts trace|debug|info|warn|warning|error|critical|off (case-insensitive).
Result<void> set_level(std::string_view level);

std::string_view level_name();

}  // namespace ambient::log
