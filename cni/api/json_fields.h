#pragma once
// Reading JSON documents with errors that say where: a syntax error gives line, column and byte
// offset; a field error gives the path of the field ("pods[2].spec.uid: expected a string, got 42").
// Used by the API's request bodies, the store's file and the CNI plugin's network configuration.
// Nothing here throws (Boost.JSON's error_code overloads only).
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "common/base/result.h"

namespace ambient::cni {

// Parses one JSON value (trailing whitespace allowed, anything else refused). Parse errors read
// "<what>: JSON syntax error at line 3 column 7 (byte 41): <reason>". Nesting deeper than 32 levels
// is refused (Boost.JSON's default).
Result<boost::json::value> parse_json(std::string_view text, std::string_view what);

// "expected a string, got number 42": the kind of a value for error texts (short; values are cut).
std::string describe_json(const boost::json::value& v);

// The longest prefix of `text` of at most `max_bytes` that does not end inside a UTF-8 sequence: how
// values are cut into error texts, which go back inside JSON replies (API, CNI) and must stay UTF-8.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes);

// Typed, path-aware access to the fields of one JSON object. Borrows the object: it must outlive the
// reader. Absent and null fields are the same ("missing" when required, nullopt/default otherwise).
class JsonObjectReader {
 public:
  // InvalidArgument "<path>: expected an object, got ..." when `v` is not an object.
  static Result<JsonObjectReader> open(const boost::json::value& v, std::string path);

  Result<std::string> required_string(std::string_view key) const;
  // "" when absent.
  Result<std::string> optional_string(std::string_view key) const;
  Result<std::optional<bool>> optional_bool(std::string_view key) const;
  Result<std::int64_t> required_int64(std::string_view key) const;
  Result<std::uint64_t> required_uint64(std::string_view key) const;
  // nullptr when absent (only when `required` is false).
  Result<const boost::json::array*> array(std::string_view key, bool required) const;
  // The field's value, nullptr when absent or null.
  const boost::json::value* find(std::string_view key) const;

  // InvalidArgument naming the first key not in `known` (catches typos such as "serviceaccount").
  Result<void> reject_unknown_keys(std::initializer_list<std::string_view> known) const;

  // "<path>.<key>" (or "<key>" at the top level): for callers' own error texts.
  std::string field_path(std::string_view key) const;
  const std::string& path() const noexcept { return path_; }
  const boost::json::object& object() const noexcept { return *object_; }

 private:
  JsonObjectReader(const boost::json::object& o, std::string path) : object_(&o), path_(std::move(path)) {}
  Error field_error(std::string_view key, std::string_view what) const;

  const boost::json::object* object_;
  std::string path_;  // empty at the top level
};

}  // namespace ambient::cni
