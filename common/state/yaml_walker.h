#pragma once
// YamlWalker: the hand-walk of a yaml-cpp tree shared by the config parsers (common/state/local_config.cpp,
// waypoint/config). No Node::as<> (it throws): every value travels with its field path and 1-based line, so
// every error reads "<source>:<line>: <prefix><path>: <why>".
//
// Loading: a YAML text becomes a tree only through load_document() / load_documents(). They first stream the
// text through yaml-cpp's parser with a counting event handler (no tree), and build the tree only when the text
// keeps these bounds (each refusal names the source and line; kind ResourceExhausted unless said otherwise):
// - Aliases: yaml-cpp shares the node an anchor (`&a`) names under every alias (`*a`), but a walk visits it
//   once per alias and copies its scalars each time; aliases of aliases multiply ("billion laughs": 5 KB of
//   AuthorizationPolicy named 200 x 200 x 200 principals of 2 KB, 16 GB once walked). The expanded size,
//   counted with every alias replaced by its anchor's subtree, is bounded per text: nodes <= 2 x text bytes +
//   kAliasAllowance, and scalar bytes <= 2 x text bytes + kAliasAllowance. Without aliases a text stays within
//   2 x its bytes in both (at most two nodes per byte of text, as in `{,,,}`; a decoded scalar at most 1.5
//   bytes per byte, as in "\L"), so only aliases can reach the bound; anchors that repeat a few small subtrees
//   still load. An alias inside the node its anchor names (a cycle) is refused (kind InvalidArgument).
// - Nesting: at most kMaxNesting maps and lists inside each other (yaml-cpp's own guard is 2000 levels of
//   recursion; our schemas are about 10 deep).
// - Documents: at most `max_documents` per text. yaml-cpp 0.7 loops forever on a ',' at the top of a document
//   (the token is never consumed, LoadAll appends null documents until memory runs out): a document that starts
//   where the previous one started is refused as invalid YAML (kind Parse).
// Syntax errors read "<source>:<line>: invalid YAML: <yaml-cpp's message>" (kind Parse).
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
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/base/result.h"

namespace ambient::yaml {

using Names = std::initializer_list<std::string_view>;

inline constexpr int kMaxNesting = 100;
inline constexpr std::size_t kAliasAllowance = 64 * 1024;  // nodes, and scalar bytes, aliases may add to a text

// The first document of `text` (null for an empty text); later documents are not read, as YAML::Load does.
Result<YAML::Node> load_document(std::string_view text, std::string_view source);
// Every document of `text`, in order (a `---` alone gives a null document).
Result<std::vector<YAML::Node>> load_documents(std::string_view text, std::string_view source, std::size_t max_documents);

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
