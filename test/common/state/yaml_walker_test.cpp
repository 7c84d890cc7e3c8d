// Loading YAML under bounds (aliases, nesting, documents) before yaml-cpp builds a tree; Walker::entries().
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/state/yaml_walker.h"

using namespace ambient;
using namespace ambient::yaml;

namespace {

std::string repeat(std::string_view s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

// "Billion laughs": level i is a list of ten aliases of level i-1, so level 9 names 10^9 scalars in 570 bytes.
std::string laughs() {
  std::string out = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i)
    out += fmt::format("l{0}: &l{0} [{1}]\n", i, fmt::format("*l{0}, *l{0}, *l{0}, *l{0}, *l{0}, *l{0}, *l{0}, *l{0}, *l{0}, *l{0}", i - 1));
  return out;
}

}  // namespace

TEST_SUITE("common/state/yaml_walker") {
  TEST_CASE("hostile texts are refused while streaming, with the source, the line and the bound") {
    struct Row {
      const char* name;
      std::string text;
      ErrorKind kind;
      std::string want;  // the error context starts with this
    };
    const std::string long_string(1000, 'x');
    const Row rows[] = {
        // Line 5: l4 expands to 111111 nodes, past 2 x 570 + 65536.
        {"billion laughs (nodes)", laughs(), ErrorKind::ResourceExhausted,
         "s.yaml:5: YAML aliases expand this text past 66676 nodes (2 x 570 bytes of text + 65536)"},
        {"one long string repeated (bytes)", "s: &s " + long_string + "\nl: [" + repeat("*s, ", 69) + "*s]\n",
         ErrorKind::ResourceExhausted, "s.yaml:2: YAML aliases expand this text past"},
        {"an alias inside its own anchor (a cycle)", "a: &x [b, *x]\n", ErrorKind::InvalidArgument,
         "s.yaml:1: an alias inside the node its anchor names (a cycle)"},
        {"flow lists 101 deep", repeat("[", 101) + repeat("]", 101) + "\n", ErrorKind::ResourceExhausted,
         "s.yaml:1: maps and lists nested deeper than 100 levels"},
        {"block maps 101 deep", [] {
           std::string s;
           for (int i = 0; i < 101; ++i) s += std::string(static_cast<std::size_t>(i), ' ') + "k:\n";
           return s + std::string(101, ' ') + "v\n";
         }(),
         ErrorKind::ResourceExhausted, "s.yaml:101: maps and lists nested deeper than 100 levels"},
        // yaml-cpp 0.7 never consumes a top-level ',': LoadAll would append null documents until memory runs out.
        {"a ',' where a document starts", ",A`", ErrorKind::Parse, "s.yaml:1: invalid YAML: unexpected ',' where a document should start"},
        {"a ',' after a good document", "a: 1\n---\n,\n", ErrorKind::Parse, "s.yaml:3: invalid YAML: unexpected ','"},
        {"1001 documents", repeat("---\n", 1001), ErrorKind::ResourceExhausted, "s.yaml:1001: more than 1000 YAML documents"},
        {"a syntax error", "a: [b\n", ErrorKind::Parse, "s.yaml:2: invalid YAML: "},
    };
    for (const Row& row : rows) {
      CAPTURE(row.name);
      const auto start = std::chrono::steady_clock::now();
      auto r = load_documents(row.text, "s.yaml", 1000);
      // Bounded: streaming stops at the first bound; unbounded, these take minutes and gigabytes (or forever).
      CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
      REQUIRE_FALSE(r.has_value());
      CAPTURE(r.error().context);
      CHECK(r.error().kind == row.kind);
      CHECK(r.error().context.starts_with(row.want));
    }
  }

  TEST_CASE("texts within the bounds load") {
    SUBCASE("aliases that repeat a little: the alias is the anchor's node") {
      auto r = load_documents("base: &b {name: x, port: 80}\nlist: [*b, *b, *b]\n", "s.yaml", 10);
      REQUIRE(r.has_value());
      REQUIRE(r->size() == 1);
      CHECK((*r)[0]["list"][2]["port"].Scalar() == "80");
    }
    SUBCASE("100 levels of nesting, exactly the bound") {
      CHECK(load_documents(repeat("[", 100) + repeat("]", 100), "s.yaml", 1).has_value());
    }
    SUBCASE("1000 documents, exactly the bound") {
      auto r = load_documents(repeat("---\na: 1\n", 1000), "s.yaml", 1000);
      REQUIRE(r.has_value());
      CHECK(r->size() == 1000);
    }
    // Without aliases a text never reaches the alias bound (2 x its bytes + kAliasAllowance): the densest texts.
    SUBCASE("two nodes per byte, without aliases") {
      const std::string text = "{" + std::string(200000, ',') + "}";  // 400001 nodes (null keys and values)
      CHECK(load_documents(text, "s.yaml", 1).has_value());
    }
    SUBCASE("1.5 bytes of string per byte, without aliases") {
      const std::string text = "\"" + repeat("\\L", 100000) + "\"";  // U+2028: 3 bytes per 2 of text
      auto r = load_documents(text, "s.yaml", 1);
      REQUIRE(r.has_value());
      CHECK((*r)[0].Scalar().size() == 300000);
    }
  }

  TEST_CASE("load_document reads the first document only (as YAML::Load) under the same bounds") {
    auto one = load_document("a: 1\n---\n,\n", "s.yaml");
    REQUIRE(one.has_value());
    CHECK((*one)["a"].Scalar() == "1");
    CHECK(load_document("", "s.yaml").has_value());
    auto laughed = load_document(laughs(), "s.yaml");
    REQUIRE_FALSE(laughed.has_value());
    CHECK(laughed.error().context.starts_with("s.yaml:5: YAML aliases expand this text past"));
  }

  TEST_CASE("entries(): free-form keys, duplicates refused, many keys in linear time") {
    const Walker w("s.yaml");
    auto doc = load_document("m: {a: 1, b: 2, a: 3}\n", "s.yaml");
    REQUIRE(doc.has_value());
    std::vector<std::string> keys;
    auto r = w.entries(At{(*doc)["m"], "m", 1}, [&](const At& k, const At&) -> Result<void> {
      keys.push_back(k.n.Scalar());
      return ok();
    });
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().context == "s.yaml:1: m[\"a\"]: duplicate key");
    CHECK(keys == std::vector<std::string>{"a", "b"});

    std::string many = "m:\n";
    for (int i = 0; i < 20000; ++i) many += fmt::format("  k{}: {}\n", i, i);
    auto big = load_document(many, "s.yaml");
    REQUIRE(big.has_value());
    std::size_t n = 0;
    CHECK(w.entries(At{(*big)["m"], "m", 1}, [&](const At&, const At&) -> Result<void> {
      ++n;
      return ok();
    }).has_value());
    CHECK(n == 20000);
  }
}
