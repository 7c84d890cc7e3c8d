#include "cni/api/json_fields.h"

#include <algorithm>

#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>

namespace ambient::cni {

namespace json = boost::json;

namespace {

// 1-based line and column of byte `offset` in `text`.
std::pair<std::size_t, std::size_t> line_and_column(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  const std::string_view before = text.substr(0, offset);
  const std::size_t line = 1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
  const std::size_t last_newline = before.rfind('\n');
  const std::size_t column = last_newline == std::string_view::npos ? offset + 1 : offset - last_newline;
  return {line, column};
}

Error syntax_error(std::string_view text, std::string_view what, std::size_t offset, std::string_view reason) {
  const auto [line, column] = line_and_column(text, offset);
  return errorf(ErrorKind::Parse, "{}: JSON syntax error at line {} column {} (byte {}): {}", what, line, column,
                offset, reason);
}

}  // namespace

Result<json::value> parse_json(std::string_view text, std::string_view what) {
  json::stream_parser parser;
  boost::system::error_code ec;
  // write_some stops after one complete value; on an error it returns the offset it reached.
  const std::size_t consumed = parser.write_some(text.data(), text.size(), ec);
  if (ec) return syntax_error(text, what, consumed, ec.message());
  const auto rest = text.substr(consumed);
  const auto garbage = rest.find_first_not_of(" \t\r\n");
  if (garbage != std::string_view::npos) {
    return syntax_error(text, what, consumed + garbage, "unexpected characters after the JSON value");
  }
  parser.finish(ec);
  if (ec) return syntax_error(text, what, text.size(), ec.message());
  return parser.release();
}

std::string describe_json(const json::value& v) {
  std::string text = json::serialize(v);
  constexpr std::size_t kMax = 60;
  if (text.size() > kMax) text = std::string(utf8_prefix(text, kMax)) + "...";
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "boolean " + text;
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_: return "number " + text;
    case json::kind::string: return "string " + text;
    case json::kind::array: return "array " + text;
    case json::kind::object: return "object " + text;
  }
  return text;
}

std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // a continuation byte
  return text.substr(0, cut);
}

Result<JsonObjectReader> JsonObjectReader::open(const json::value& v, std::string path) {
  const json::object* o = v.if_object();
  if (o == nullptr) {
    return errorf(ErrorKind::InvalidArgument, "{}: expected an object, got {}", path.empty() ? "document" : path,
                  describe_json(v));
  }
  return JsonObjectReader(*o, std::move(path));
}

std::string JsonObjectReader::field_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

Error JsonObjectReader::field_error(std::string_view key, std::string_view what) const {
  return errorf(ErrorKind::InvalidArgument, "{}: {}", field_path(key), what);
}

const json::value* JsonObjectReader::find(std::string_view key) const {
  const json::value* v = object_->if_contains(key);
  return v == nullptr || v->is_null() ? nullptr : v;
}

Result<std::string> JsonObjectReader::required_string(std::string_view key) const {
  const json::value* v = find(key);
  if (v == nullptr) return field_error(key, "missing");
  return optional_string(key);
}

Result<std::string> JsonObjectReader::optional_string(std::string_view key) const {
  const json::value* v = find(key);
  if (v == nullptr) return std::string();
  const json::string* s = v->if_string();
  if (s == nullptr) return field_error(key, "expected a string, got " + describe_json(*v));
  return std::string(s->data(), s->size());
}

Result<std::optional<bool>> JsonObjectReader::optional_bool(std::string_view key) const {
  const json::value* v = find(key);
  if (v == nullptr) return std::optional<bool>();
  const bool* b = v->if_bool();
  if (b == nullptr) return field_error(key, "expected true or false, got " + describe_json(*v));
  return std::optional<bool>(*b);
}

Result<std::int64_t> JsonObjectReader::required_int64(std::string_view key) const {
  const json::value* v = find(key);
  if (v == nullptr) return field_error(key, "missing");
  if (const std::int64_t* i = v->if_int64()) return *i;
  return field_error(key, "expected an integer, got " + describe_json(*v));
}

Result<std::uint64_t> JsonObjectReader::required_uint64(std::string_view key) const {
  const json::value* v = find(key);
  if (v == nullptr) return field_error(key, "missing");
  if (const std::uint64_t* u = v->if_uint64()) return *u;
  if (const std::int64_t* i = v->if_int64(); i != nullptr && *i >= 0) return static_cast<std::uint64_t>(*i);
  return field_error(key, "expected an unsigned integer, got " + describe_json(*v));
}

Result<const json::array*> JsonObjectReader::array(std::string_view key, bool required) const {
  const json::value* v = find(key);
  if (v == nullptr) {
    if (required) return field_error(key, "missing");
    return static_cast<const json::array*>(nullptr);
  }
  const json::array* a = v->if_array();
  if (a == nullptr) return field_error(key, "expected an array, got " + describe_json(*v));
  return a;
}

Result<void> JsonObjectReader::reject_unknown_keys(std::initializer_list<std::string_view> known) const {
  for (const auto& [key, value] : *object_) {
    const std::string_view k(key.data(), key.size());
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      std::string list;
      for (std::string_view n : known) list += list.empty() ? std::string(n) : ", " + std::string(n);
      return field_error(k, fmt::format("unknown field (known: {})", list));
    }
  }
  return ok();
}

}  // namespace ambient::cni
