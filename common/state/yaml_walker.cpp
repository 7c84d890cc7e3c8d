#include "common/state/yaml_walker.h"

#include <algorithm>
#include <charconv>
#include <sstream>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>

namespace ambient::yaml {

namespace {

// The streaming pass of load_document() / load_documents(): counts what the text expands to, without building a
// tree, and stops yaml-cpp (by throwing Refused out of a callback) at the first bound the text breaks.
class Census final : public YAML::EventHandler {
 public:
  struct Refused {
    Error error;
  };

  Census(std::string_view text, std::string_view source, std::size_t max_documents)
      : text_(text),
        source_(source),
        max_nodes_(2 * text.size() + kAliasAllowance),
        max_bytes_(2 * text.size() + kAliasAllowance),
        max_documents_(max_documents) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    // yaml-cpp consumed nothing since the last document started (a ',' at the top level): it would start this
    // one again forever.
    if (documents_ > 0 && mark.pos == last_start_) {
      const auto pos = static_cast<std::size_t>(mark.pos);
      const char c = pos < text_.size() ? text_[pos] : '\0';  // pos counts bytes of UTF-8 text
      refuse(mark, ErrorKind::Parse,
             c > ' ' && c < 0x7f ? fmt::format("invalid YAML: unexpected '{}' where a document should start", c)
                                 : std::string("invalid YAML: a document starts with what cannot start one"));
    }
    last_start_ = mark.pos;
    if (++documents_ > max_documents_)
      refuse(mark, ErrorKind::ResourceExhausted,
             fmt::format("more than {} YAML documents (at most {})", max_documents_, max_documents_));
    anchors_.clear();  // anchors do not cross documents (yaml-cpp numbers them per document)
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { leaf(mark, anchor, Size{1, 0}); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string& value) override {
    leaf(mark, anchor, Size{1, value.size()});
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    const auto it = anchors_.find(anchor);
    // yaml-cpp refuses an unknown anchor itself; one it knows but we have not closed is still open around us.
    if (it == anchors_.end()) refuse(mark, ErrorKind::InvalidArgument, "an alias inside the node its anchor names (a cycle)");
    add(mark, it->second);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Size {
    std::size_t nodes = 0, bytes = 0;  // nodes; bytes of scalars (decoded)
  };
  struct Open {
    YAML::anchor_t anchor;
    Size at_start;  // total_ when the collection opened
  };

  [[noreturn]] void refuse(const YAML::Mark& mark, ErrorKind kind, std::string_view why) const {
    throw Refused{make_error(kind, fmt::format("{}:{}: {}", source_, mark.is_null() ? 1 : mark.line + 1, why))};
  }

  // Never overflows: both totals stay <= 2 x their bound (an addition is at most the total so far, checked).
  void add(const YAML::Mark& mark, Size s) {
    total_.nodes += s.nodes;
    total_.bytes += s.bytes;
    if (total_.nodes > max_nodes_ || total_.bytes > max_bytes_)
      refuse(mark, ErrorKind::ResourceExhausted,
             fmt::format("YAML aliases expand this text past {} {} (2 x {} bytes of text + {}); each alias (*name) "
                         "repeats the whole node its anchor (&name) names",
                         total_.nodes > max_nodes_ ? max_nodes_ : max_bytes_,
                         total_.nodes > max_nodes_ ? "nodes" : "bytes of strings", text_.size(), kAliasAllowance));
  }
  void leaf(const YAML::Mark& mark, YAML::anchor_t anchor, Size s) {
    add(mark, s);
    if (anchor != YAML::NullAnchor) anchors_[anchor] = s;
  }
  void open(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (open_.size() >= static_cast<std::size_t>(kMaxNesting))
      refuse(mark, ErrorKind::ResourceExhausted, fmt::format("maps and lists nested deeper than {} levels", kMaxNesting));
    const Size before = total_;
    add(mark, Size{1, 0});
    open_.push_back(Open{anchor, before});
  }
  void close() {
    if (open_.empty()) return;  // yaml-cpp balances its events; not expected
    const Open o = open_.back();
    open_.pop_back();
    if (o.anchor != YAML::NullAnchor)
      anchors_[o.anchor] = Size{total_.nodes - o.at_start.nodes, total_.bytes - o.at_start.bytes};
  }

  std::string_view text_;
  std::string source_;
  std::size_t max_nodes_, max_bytes_, max_documents_;
  Size total_;
  std::vector<Open> open_;
  std::unordered_map<YAML::anchor_t, Size> anchors_;  // closed anchors of this document: their expanded size
  std::size_t documents_ = 0;
  int last_start_ = -1;  // Mark::pos of the last document start
};

Error syntax_error(std::string_view source, const YAML::Exception& e) {
  return make_error(ErrorKind::Parse, fmt::format("{}:{}: invalid YAML: {}", source, e.mark.is_null() ? 1 : e.mark.line + 1, e.msg));
}

// Streams `text` through a Census: its first document only (as YAML::Load reads it), or every document.
Result<void> census(const std::string& text, std::string_view source, std::size_t max_documents, bool first_only) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  Census c(text, source, max_documents);
  try {
    if (first_only) parser.HandleNextDocument(c);
    else
      while (parser.HandleNextDocument(c)) {
      }
  } catch (const Census::Refused& r) {
    return r.error;
  } catch (const YAML::Exception& e) {
    return syntax_error(source, e);
  } catch (const std::exception& e) {
    return make_error(ErrorKind::Internal, fmt::format("{}: {}", source, e.what()));
  }
  return ok();
}

template <typename F>
auto build(std::string_view source, F&& f) -> Result<decltype(f())> {
  try {  // the census saw the same text through the same parser: yaml-cpp is not expected to throw here
    return f();
  } catch (const YAML::Exception& e) {
    return syntax_error(source, e);
  } catch (const std::exception& e) {
    return make_error(ErrorKind::Internal, fmt::format("{}: {}", source, e.what()));
  }
}

}  // namespace

Result<YAML::Node> load_document(std::string_view text, std::string_view source) {
  const std::string t(text);
  AMBIENT_TRY(census(t, source, 1, true));
  return build(source, [&] { return YAML::Load(t); });
}

Result<std::vector<YAML::Node>> load_documents(std::string_view text, std::string_view source, std::size_t max_documents) {
  const std::string t(text);
  AMBIENT_TRY(census(t, source, max_documents, false));
  return build(source, [&] { return YAML::LoadAll(t); });
}

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
  std::unordered_set<std::string_view> seen;  // views of the keys' own strings (the tree outlives the walk)
  for (const auto& kv : at.n) {
    const int key_line = line_of(kv.first, at.line);
    if (!kv.first.IsScalar()) return fail(key_line, at.path, "map keys must be scalars");
    const std::string& key = kv.first.Scalar();
    const std::string path = fmt::format("{}[\"{}\"]", at.path, key);
    if (!seen.insert(key).second) return fail(key_line, path, "duplicate key");
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
