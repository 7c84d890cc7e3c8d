#pragma once
// Small configuration helpers: durations ("5s", "100ms", "1m30s", "24h"), sizes ("4Mi", "16Ki", "1G",
// "65536"), booleans, and options that read a command-line flag, then an environment variable, then a
// default, in that order (Istio's env names; flags for the same meaning).
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"

namespace ambient::config {

// "1h2m3s", "250ms", "10us", "5ns", "1.5s". A bare number is refused (say the unit).
Result<std::chrono::nanoseconds> parse_duration(std::string_view text);
// "4Mi" = 4*2^20, "16Ki", "1Gi", "4M" = 4*10^6, "1k", "123" (bytes).
Result<std::uint64_t> parse_size(std::string_view text);
// true/false/1/0/yes/no/on/off (case-insensitive).
Result<bool> parse_bool(std::string_view text);
// Integer in [min, max].
Result<std::int64_t> parse_int(std::string_view text, std::int64_t min, std::int64_t max);

std::optional<std::string> env(const char* name);

// Declared options, resolved flag > env > default. Unknown flags and bad values are errors that name
// the flag or variable and the reason.
class Options {
 public:
  struct Spec {
    std::string flag;         // "xds-address" -> --xds-address=VALUE or --xds-address VALUE
    std::string env;          // "XDS_ADDRESS" (may be empty)
    std::string default_value;
    std::string help;
    bool is_switch = false;   // --flag alone means "true"
  };

  Options& add(Spec spec);
  // Parses argv (argv[0] skipped). Positional arguments are kept in positional().
  Result<void> parse(int argc, const char* const* argv);
  // The resolved value for a declared flag name.
  const std::string& get(std::string_view flag) const;
  // Where the value came from: "flag", "env", "default".
  std::string_view source(std::string_view flag) const;
  Result<std::chrono::nanoseconds> duration(std::string_view flag) const;
  Result<std::uint64_t> size(std::string_view flag) const;
  Result<bool> boolean(std::string_view flag) const;
  Result<std::int64_t> integer(std::string_view flag, std::int64_t min, std::int64_t max) const;
  const std::vector<std::string>& positional() const { return positional_; }
  bool help_requested() const { return help_; }
  std::string usage(std::string_view program) const;

 private:
  struct Value { std::string text; std::string source; };
  const Spec* find(std::string_view flag) const;
  std::string where(std::string_view flag) const;  // "--flag (env FLAG)" for messages
  std::vector<Spec> specs_;
  std::map<std::string, Value, std::less<>> values_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

}  // namespace ambient::config
