#include <doctest/doctest.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/grpc/framing.h"

using namespace ambient;
using namespace ambient::grpc;
using namespace std::string_literals;

namespace {

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Feeds `wire` in chunks of the given sizes (the last chunk repeats) and collects every message.
Result<std::vector<std::string>> decode_chunked(FrameDecoder& d, const std::string& wire, std::vector<std::size_t> cuts) {
  std::vector<std::string> out;
  std::size_t off = 0, i = 0;
  while (off < wire.size()) {
    const std::size_t n = std::min(cuts[std::min(i++, cuts.size() - 1)], wire.size() - off);
    auto chunk = bytes(wire).subspan(off, n);
    off += n;
    while (!chunk.empty()) {
      auto m = d.next(chunk);
      if (!m) return m.error();
      if (*m) out.push_back(std::move(**m));
    }
  }
  return out;
}

}  // namespace

TEST_SUITE("common/grpc/framing") {
  TEST_CASE("encode: golden bytes") {
    CHECK(*encode_frame("hello") == "\x00\x00\x00\x00\x05hello"s);
    CHECK(*encode_frame("") == "\x00\x00\x00\x00\x00"s);
    const std::string big(0x010203, 'x');
    auto f = encode_frame(big);
    REQUIRE(f);
    CHECK(f->substr(0, 5) == "\x00\x00\x01\x02\x03"s);
    CHECK(f->size() == big.size() + 5);
    std::string two;
    REQUIRE(append_frame(two, "ab"));
    REQUIRE(append_frame(two, "c"));
    CHECK(two == "\x00\x00\x00\x00\x02" "ab" "\x00\x00\x00\x00\x01" "c"s);
  }

  TEST_CASE("decode: golden bytes, one message per frame") {
    FrameDecoder d;
    const std::string wire = "\x00\x00\x00\x00\x05hello"s;
    auto in = bytes(wire);
    auto m = d.next(in);
    REQUIRE(m);
    REQUIRE(m->has_value());
    CHECK(**m == "hello");
    CHECK(in.empty());
    CHECK_FALSE(d.mid_message());
  }

  TEST_CASE("decode: empty messages are messages") {
    FrameDecoder d;
    const std::string wire = "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"s;
    auto got = decode_chunked(d, wire, {wire.size()});
    REQUIRE(got);
    CHECK(*got == std::vector<std::string>{"", ""});
  }

  TEST_CASE("decode: three messages split at every byte boundary") {
    std::string wire;
    const std::vector<std::string> msgs = {"hello", "", std::string(300, '\xab') + "tail"};
    for (const auto& m : msgs) REQUIRE(append_frame(wire, m));
    for (std::size_t cut = 1; cut <= wire.size(); ++cut) {
      CAPTURE(cut);
      FrameDecoder d;
      auto got = decode_chunked(d, wire, {cut});
      REQUIRE(got);
      CHECK(*got == msgs);
      CHECK_FALSE(d.mid_message());
    }
    // Two pieces at every split point, so both the prefix and the body straddle a boundary.
    for (std::size_t split = 0; split <= wire.size(); ++split) {
      CAPTURE(split);
      FrameDecoder d;
      auto got = decode_chunked(d, wire, {split == 0 ? wire.size() : split, wire.size()});
      REQUIRE(got);
      CHECK(*got == msgs);
    }
  }

  TEST_CASE("decode: a partial frame stays buffered and is reported as mid-message") {
    FrameDecoder d;
    const std::string part = "\x00\x00\x00\x00\x05hel"s;
    auto in = bytes(part);
    auto m = d.next(in);
    REQUIRE(m);
    CHECK_FALSE(m->has_value());
    CHECK(in.empty());
    CHECK(d.mid_message());
    const std::string rest = "lo\x00\x00\x00\x00\x01z"s;
    auto in2 = bytes(rest);
    auto m2 = d.next(in2);
    REQUIRE(m2);
    REQUIRE(m2->has_value());
    CHECK(**m2 == "hello");
    CHECK(in2.size() == 6);  // the next frame is left for the next call
    auto m3 = d.next(in2);
    REQUIRE(m3);
    REQUIRE(m3->has_value());
    CHECK(**m3 == "z");
  }

  TEST_CASE("decode: oversize refused from the prefix alone, and the decoder stays failed") {
    FrameDecoder d(16);
    const std::string ok16 = "\x00\x00\x00\x00\x10"s + std::string(16, 'a');
    auto in = bytes(ok16);
    auto m = d.next(in);
    REQUIRE(m);
    CHECK((*m)->size() == 16);

    const std::string over = "\x00\x00\x00\x00\x11"s;  // 17 bytes announced, none sent
    auto in2 = bytes(over);
    auto e = d.next(in2);
    REQUIRE_FALSE(e);
    CHECK(e.error().kind == ErrorKind::ResourceExhausted);
    CHECK(e.error().code == 8);
    CHECK(e.error().context.find("17 bytes exceeds the limit of 16") != std::string::npos);
    auto again = bytes(ok16);
    auto e2 = d.next(again);
    REQUIRE_FALSE(e2);
    CHECK(e2.error().kind == ErrorKind::ResourceExhausted);

    FrameDecoder huge(200u << 20);  // ztunnel's xDS limit: 4 GiB - 1 announced is still refused
    const std::string max = "\x00\xff\xff\xff\xff"s;
    auto in3 = bytes(max);
    auto e3 = huge.next(in3);
    REQUIRE_FALSE(e3);
    CHECK(e3.error().kind == ErrorKind::ResourceExhausted);
  }

  TEST_CASE("decode: compressed flag refused") {
    FrameDecoder d;
    const std::string compressed = "\x01\x00\x00\x00\x05hello"s;
    auto in = bytes(compressed);
    auto e = d.next(in);
    REQUIRE_FALSE(e);
    CHECK(e.error().kind == ErrorKind::Unsupported);

    FrameDecoder d2;
    const std::string bad_flag = "\x02\x00\x00\x00\x00"s;
    auto in2 = bytes(bad_flag);
    auto e2 = d2.next(in2);
    REQUIRE_FALSE(e2);
    CHECK(e2.error().kind == ErrorKind::Parse);
  }
}
