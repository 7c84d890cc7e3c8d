#pragma once
// YamlWalker: the hand-walk of a yaml-cpp tree shared by the config parsers (common/state/local_config.cpp,
// waypoint/config). No Node::as<> (it throws): every value travels with its field path and 1-based line, so
// every error reads "<source>:<line>: <prefix><path>: <why>".
//
// Rules: fields() refuses unknown and duplicate keys and names the known ones; a key set to null counts as
// absent (also for `required`); list() treats null as empty and refuses an empty element ("- " alone), which
// could otherwise read as an empty rule that matches everything.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <unordered_map>

#include <yaml-cpp/yaml.h>

#include "common/base/result.h"

namespace ambient::yaml {

using Names = std::initializer_list<std::string_view>;

// A value in the document: the node, its field path ("workloads[1].workloadIps[0]") and its line (1-based; the
// key's line when the value has no position of its own).
struct At {
  YAML::Node n;
  std::string path;
  int line = 0;
};

int line_of(const YAML::Node& n, int fallback);
std::string_view kind_of(const YAML::Node& n);  // "a map", "a list", "a scalar", "null", "nothing"
std::string join(Names set);                    // "a, b, c"
bool contains(Names set, std::string_view key);

class Walker {
 public:
  using FieldFn = std::function<Result<void>(std::string_view key, const At& value)>;
  using ElemFn = std::function<Result<void>(const At& elem, std::size_t index)>;
  using EntryFn = std::function<Result<void>(const At& key, const At& value)>;

  explicit Walker(std::string_view source) : source_(source) {}

  Error fail(int line, std::string_view path, std::string_view reason, ErrorKind kind = ErrorKind::InvalidArgument) const;
  Error fail(const At& at, std::string_view reason, ErrorKind kind = ErrorKind::InvalidArgument) const {
    return fail(at.line, at.path, reason, kind);
  }

  // Walks a map: each key must be in `known` and appear once; null values count as absent.
  Result<void> fields(const At& at, Names known, Names required, const FieldFn& fn) const;
  // Walks a list (null = empty list).
  Result<void> list(const At& at, const ElemFn& fn) const;
  // Walks a map with free-form keys (null = empty map); `fn` gets the key as an At whose node is the key.
  Result<void> entries(const At& at, const EntryFn& fn) const;
  Result<std::string> str(const At& at) const;
  Result<bool> boolean(const At& at) const;  // plain true/false (also True, TRUE, False, FALSE)
  Result<std::uint64_t> integer(const At& at, std::uint64_t min, std::uint64_t max, std::string_view what) const;

 protected:
  std::string source_;
  std::string prefix_;  // put before the path in errors, e.g. "<Kind> <ns>/<name>: "
  // When set, fields() and list() record the line of every path they visit (to place errors that come back
  // from a later validation step with only a path).
  std::unordered_map<std::string, int>* lines_ = nullptr;
};

}  // namespace ambient::yaml
