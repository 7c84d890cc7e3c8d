#include "common/state/yaml_walker.h"

#include <algorithm>
#include <charconv>
#include <vector>

#include <fmt/format.h>

namespace ambient::yaml {

int line_of(const YAML::Node& n, int fallback) {
  const YAML::Mark m = n.Mark();
  return m.is_null() ? fallback : m.line + 1;
}

std::string_view kind_of(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

std::string join(Names set) {
  std::string out;
  for (std::string_view n : set) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

bool contains(Names set, std::string_view key) { return std::find(set.begin(), set.end(), key) != set.end(); }

Error Walker::fail(int line, std::string_view path, std::string_view reason, ErrorKind kind) const {
  if (path.empty()) return make_error(kind, fmt::format("{}:{}: {}{}", source_, line, prefix_, reason));
  return make_error(kind, fmt::format("{}:{}: {}{}: {}", source_, line, prefix_, path, reason));
}

Result<void> Walker::fields(const At& at, Names known, Names required, const FieldFn& fn) const {
  if (!at.n.IsMap() && !at.n.IsNull()) return fail(at, fmt::format("expected a map, got {}", kind_of(at.n)));
  if (lines_ != nullptr) lines_->emplace(at.path, at.line);
  std::vector<std::string> seen;     // every key, for duplicates
  std::vector<std::string> present;  // keys with a non-null value
  if (at.n.IsMap()) {
    for (const auto& kv : at.n) {
      const int key_line = line_of(kv.first, at.line);
      if (!kv.first.IsScalar()) return fail(key_line, at.path, "map keys must be plain strings");
      const std::string& key = kv.first.Scalar();
      const std::string path = at.path.empty() ? key : at.path + "." + key;
      if (!contains(known, key)) return fail(key_line, path, fmt::format("unknown field (known: {})", join(known)));
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) return fail(key_line, path, "duplicate field");
      seen.push_back(key);
      if (kv.second.IsNull()) continue;  // `key:` or `key: null` = absent
      present.push_back(key);
      const At value{kv.second, path, line_of(kv.second, key_line)};
      if (lines_ != nullptr) lines_->emplace(path, value.line);
      AMBIENT_TRY(fn(key, value));
    }
  }
  for (std::string_view r : required)
    if (std::find(present.begin(), present.end(), r) == present.end())
      return fail(at, fmt::format("missing required field \"{}\"", r));
  return ok();
}

Result<void> Walker::list(const At& at, const ElemFn& fn) const {
  if (at.n.IsNull()) return ok();
  if (!at.n.IsSequence()) return fail(at, fmt::format("expected a list, got {}", kind_of(at.n)));
  std::size_t i = 0;
  int prev_line = line_of(at.n, at.line);
  for (const auto& e : at.n) {
    const At elem{e, fmt::format("{}[{}]", at.path, i), line_of(e, at.line)};
    // `- ` with nothing: refused rather than read as an empty element (which could match everything).
    // yaml-cpp marks an implicit null at the next token, so point at the element before it.
    if (e.IsNull()) return fail(std::min(elem.line, prev_line), elem.path, "empty list element");
    if (lines_ != nullptr) lines_->emplace(elem.path, elem.line);
    AMBIENT_TRY(fn(elem, i));
    prev_line = elem.line;
    ++i;
  }
  return ok();
}

Result<void> Walker::entries(const At& at, const EntryFn& fn) const {
  if (at.n.IsNull()) return ok();
  if (!at.n.IsMap()) return fail(at, fmt::format("expected a map, got {}", kind_of(at.n)));
  std::vector<std::string> seen;
  for (const auto& kv : at.n) {
    const int key_line = line_of(kv.first, at.line);
    if (!kv.first.IsScalar()) return fail(key_line, at.path, "map keys must be scalars");
    const std::string& key = kv.first.Scalar();
    const std::string path = fmt::format("{}[\"{}\"]", at.path, key);
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) return fail(key_line, path, "duplicate key");
    seen.push_back(key);
    AMBIENT_TRY(fn(At{kv.first, path, key_line}, At{kv.second, path, line_of(kv.second, key_line)}));
  }
  return ok();
}

Result<std::string> Walker::str(const At& at) const {
  if (!at.n.IsScalar()) return fail(at, fmt::format("expected a string, got {}", kind_of(at.n)));
  return at.n.Scalar();
}

Result<bool> Walker::boolean(const At& at) const {
  if (at.n.IsScalar() && at.n.Tag() != "!") {  // plain (unquoted) scalar
    const std::string& v = at.n.Scalar();
    if (v == "true" || v == "True" || v == "TRUE") return true;
    if (v == "false" || v == "False" || v == "FALSE") return false;
  }
  if (at.n.IsScalar()) return fail(at, fmt::format("expected true or false, got \"{}\"", at.n.Scalar()));
  return fail(at, fmt::format("expected true or false, got {}", kind_of(at.n)));
}

Result<std::uint64_t> Walker::integer(const At& at, std::uint64_t min, std::uint64_t max, std::string_view what) const {
  if (!at.n.IsScalar()) return fail(at, fmt::format("expected {}, got {}", what, kind_of(at.n)));
  const std::string& v = at.n.Scalar();
  std::uint64_t x = 0;
  const bool digits = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (!digits || ec != std::errc{} || end != v.data() + v.size() || x < min || x > max)
    return fail(at, fmt::format("\"{}\" is not {} ({}..{})", v, what, min, max));
  return x;
}

}  // namespace ambient::yaml
