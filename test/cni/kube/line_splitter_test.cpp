#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cni/kube/line_splitter.h"

using namespace ambient;
using namespace ambient::cni::kube;

namespace {

struct Collected {
  std::vector<std::string> lines;
  LineSplitter::OnLine on_line() {
    return [this](std::string_view line) -> Result<void> {
      lines.emplace_back(line);
      return ok();
    };
  }
};

}  // namespace

TEST_SUITE("cni/kube/line_splitter") {
  TEST_CASE("events split across pieces or sharing one come out whole and in order") {
    struct Row {
      const char* name;
      std::vector<std::string> pieces;
      std::vector<std::string> lines;
    };
    const std::vector<Row> rows = {
        {"one per piece", {"a\n", "b\n"}, {"a", "b"}},
        {"two in one piece", {"a\nb\n"}, {"a", "b"}},
        {"one across three pieces", {"ab", "cd", "e\n"}, {"abcde"}},
        {"newline alone", {"abc", "\n", "d\n"}, {"abc", "d"}},
        {"blank lines skipped", {"\n\r\n  \na\n"}, {"a"}},
        {"unfinished line waits", {"a\nb"}, {"a"}},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      LineSplitter splitter(16);
      Collected got;
      for (const auto& piece : row.pieces) REQUIRE(splitter.feed(piece, got.on_line()));
      CHECK(got.lines == row.lines);
    }
  }

  TEST_CASE("finish() delivers a last line without newline") {
    LineSplitter splitter(16);
    Collected got;
    REQUIRE(splitter.feed("a\nlast", got.on_line()));
    REQUIRE(splitter.finish(got.on_line()));
    CHECK(got.lines == std::vector<std::string>{"a", "last"});
    CHECK(splitter.buffered() == 0);
  }

  TEST_CASE("a line over the limit is ResourceExhausted naming the limit, and the splitter stays failed") {
    LineSplitter splitter(8);
    Collected got;
    REQUIRE(splitter.feed("12345678\n", got.on_line()));  // exactly the limit is fine
    auto over = splitter.feed("1234", got.on_line());
    REQUIRE(over);
    over = splitter.feed("56789", got.on_line());  // 9 bytes without a newline
    REQUIRE_FALSE(over);
    CHECK(over.error().kind == ErrorKind::ResourceExhausted);
    CHECK(over.error().context.find("longer than 8 bytes") != std::string::npos);
    CHECK(splitter.buffered() == 0);  // nothing kept
    CHECK_FALSE(splitter.feed("a\n", got.on_line()));
    CHECK(got.lines == std::vector<std::string>{"12345678"});
  }

  TEST_CASE("an error from the callback stops feeding") {
    LineSplitter splitter(64);
    int calls = 0;
    auto r = splitter.feed("a\nb\nc\n", [&](std::string_view line) -> Result<void> {
      ++calls;
      if (line == "b") return errorf(ErrorKind::InvalidArgument, "bad line");
      return ok();
    });
    REQUIRE_FALSE(r);
    CHECK(r.error().context == "bad line");
    CHECK(calls == 2);
  }
}
