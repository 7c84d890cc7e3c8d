#include "common/base/config.h"

#include "common/base/ascii.h"

#include <cctype>
#include <charconv>
#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace ambient::config {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Reads a non-negative decimal with an optional fraction at the front of `s`; advances `s`.
std::optional<double> take_number(std::string_view& s) {
  std::size_t i = 0;
  bool digits = false, dot = false;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || (s[i] == '.' && !dot))) {
    if (s[i] == '.') dot = true; else digits = true;
    ++i;
  }
  if (!digits) return std::nullopt;
  double v = std::strtod(std::string(s.substr(0, i)).c_str(), nullptr);
  s.remove_prefix(i);
  return v;
}

}  // namespace

Result<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  static constexpr struct { std::string_view unit; double ns; } kUnits[] = {
      {"ns", 1.0}, {"us", 1e3}, {"µs", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}, {"d", 86400e9}};
  std::string_view s = trim(text);
  if (s.empty()) return errorf(ErrorKind::InvalidArgument, "duration is empty (expected e.g. 5s, 100ms)");
  double total = 0;
  while (!s.empty()) {
    auto num = take_number(s);
    if (!num) return errorf(ErrorKind::InvalidArgument, "duration '{}': expected a number at '{}'", text, s);
    std::size_t ulen = 0;
    while (ulen < s.size() && !std::isdigit(static_cast<unsigned char>(s[ulen])) && s[ulen] != '.') ++ulen;
    std::string_view unit = s.substr(0, ulen);
    if (unit.empty())
      return errorf(ErrorKind::InvalidArgument, "duration '{}': number without a unit (use ns, us, ms, s, m, h, d)", text);
    const auto* u = std::find_if(std::begin(kUnits), std::end(kUnits), [&](auto& k) { return k.unit == unit; });
    if (u == std::end(kUnits))
      return errorf(ErrorKind::InvalidArgument, "duration '{}': unknown unit '{}' (use ns, us, ms, s, m, h, d)", text, unit);
    total += *num * u->ns;
    s.remove_prefix(ulen);
  }
  if (total > 9.2e18) return errorf(ErrorKind::InvalidArgument, "duration '{}' is too large", text);
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(total)));
}

Result<std::uint64_t> parse_size(std::string_view text) {
  static constexpr struct { std::string_view unit; double mult; } kUnits[] = {
      {"", 1.0}, {"b", 1.0}, {"k", 1e3}, {"m", 1e6}, {"g", 1e9},
      {"ki", 1024.0}, {"mi", 1048576.0}, {"gi", 1073741824.0}, {"kib", 1024.0}, {"mib", 1048576.0}, {"gib", 1073741824.0}};
  std::string_view s = trim(text);
  auto num = take_number(s);
  if (!num) return errorf(ErrorKind::InvalidArgument, "size '{}': expected a number (e.g. 4Mi, 16Ki, 65536)", text);
  std::string unit = ascii_lower(trim(s));
  const auto* u = std::find_if(std::begin(kUnits), std::end(kUnits), [&](auto& k) { return k.unit == unit; });
  if (u == std::end(kUnits))
    return errorf(ErrorKind::InvalidArgument, "size '{}': unknown unit '{}' (use Ki, Mi, Gi, k, M, G)", text, s);
  double v = *num * u->mult;
  if (v > 1.8e19) return errorf(ErrorKind::InvalidArgument, "size '{}' is too large", text);
  if (v != std::floor(v)) return errorf(ErrorKind::InvalidArgument, "size '{}' is not a whole number of bytes", text);
  return static_cast<std::uint64_t>(v);
}

Result<bool> parse_bool(std::string_view text) {
  std::string s = ascii_lower(trim(text));
  if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  return errorf(ErrorKind::InvalidArgument, "'{}' is not a boolean (true/false, 1/0, yes/no, on/off)", text);
}

Result<std::int64_t> parse_int(std::string_view text, std::int64_t min, std::int64_t max) {
  std::string_view s = trim(text);
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty())
    return errorf(ErrorKind::InvalidArgument, "'{}' is not an integer", text);
  if (v < min || v > max) return errorf(ErrorKind::InvalidArgument, "{} is outside [{}, {}]", v, min, max);
  return v;
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

Options& Options::add(Spec spec) {
  specs_.push_back(std::move(spec));
  return *this;
}

const Options::Spec* Options::find(std::string_view flag) const {
  for (const auto& s : specs_)
    if (s.flag == flag) return &s;
  return nullptr;
}

std::string Options::where(std::string_view flag) const {
  const Spec* s = find(flag);
  if (s == nullptr) return std::string(flag);
  auto it = values_.find(flag);
  std::string_view src = it == values_.end() ? "default" : std::string_view(it->second.source);
  if (src == "env") return fmt::format("environment variable {}", s->env);
  if (src == "flag") return fmt::format("flag --{}", s->flag);
  return fmt::format("default of --{}", s->flag);
}

Result<void> Options::parse(int argc, const char* const* argv) {
  for (const auto& s : specs_) {
    if (!s.env.empty())
      if (auto v = env(s.env.c_str())) values_[s.flag] = Value{*v, "env"};
  }
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") { help_ = true; continue; }
    if (arg == "--") { for (++i; i < argc; ++i) positional_.emplace_back(argv[i]); break; }
    if (arg.rfind("--", 0) != 0) { positional_.emplace_back(arg); continue; }
    arg.remove_prefix(2);
    std::string_view name = arg, value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    const Spec* spec = find(name);
    if (spec == nullptr) return errorf(ErrorKind::InvalidArgument, "unknown flag --{} (see --help)", name);
    if (!has_value) {
      if (spec->is_switch) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return errorf(ErrorKind::InvalidArgument, "flag --{} needs a value", name);
      }
    }
    values_[spec->flag] = Value{std::string(value), "flag"};
  }
  return ok();
}

const std::string& Options::get(std::string_view flag) const {
  if (auto it = values_.find(flag); it != values_.end()) return it->second.text;
  const Spec* s = find(flag);
  static const std::string empty;
  return s ? s->default_value : empty;
}

std::string_view Options::source(std::string_view flag) const {
  if (auto it = values_.find(flag); it != values_.end()) return it->second.source;
  return "default";
}

namespace {
template <typename T>
Result<T> annotate(Result<T> r, const std::string& where) {
  if (r) return r;
  Error e = std::move(r).error();
  e.context = where + ": " + e.context;
  return e;
}
}  // namespace

Result<std::chrono::nanoseconds> Options::duration(std::string_view flag) const {
  return annotate(parse_duration(get(flag)), where(flag));
}
Result<std::uint64_t> Options::size(std::string_view flag) const { return annotate(parse_size(get(flag)), where(flag)); }
Result<bool> Options::boolean(std::string_view flag) const { return annotate(parse_bool(get(flag)), where(flag)); }
Result<std::int64_t> Options::integer(std::string_view flag, std::int64_t min, std::int64_t max) const {
  return annotate(parse_int(get(flag), min, max), where(flag));
}

std::string Options::usage(std::string_view program) const {
  std::string out = fmt::format("usage: {} [flags]\n", program);
  for (const auto& s : specs_) {
    out += fmt::format("  --{}{}", s.flag, s.is_switch ? "" : "=VALUE");
    if (!s.env.empty()) out += fmt::format("  (env {})", s.env);
    if (!s.default_value.empty()) out += fmt::format("  [default {}]", s.default_value);
    out += fmt::format("\n      {}\n", s.help);
  }
  return out;
}

}  // namespace ambient::config
