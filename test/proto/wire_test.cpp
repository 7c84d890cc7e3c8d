// The byte builder the golden tests rely on, checked against examples of the protobuf encoding
// spec.
#include "test/proto/wire.h"

#include <doctest/doctest.h>

#include <string>

TEST_SUITE("test/proto/wire") {
  TEST_CASE("varints and tags match the encoding spec") {
    CHECK(wire::varint(0) == std::string("\x00", 1));
    CHECK(wire::varint(1) == "\x01");
    CHECK(wire::varint(127) == "\x7f");
    CHECK(wire::varint(150) == "\x96\x01");  // the spec's own example
    CHECK(wire::varint(86400) == "\x80\xa3\x05");
    CHECK(wire::tag(1, wire::kVarint) == "\x08");
    CHECK(wire::tag(2, wire::kLen) == "\x12");
    CHECK(wire::tag(15, wire::kLen) == "\x7a");
    CHECK(wire::tag(16, wire::kLen) == "\x82\x01");  // first two-byte tag
    CHECK(wire::tag(20, wire::kLen) == "\xa2\x01");
    CHECK(wire::tag(27, wire::kLen) == "\xda\x01");
  }

  TEST_CASE("fields") {
    CHECK(wire::num(1, 150) == "\x08\x96\x01");
    CHECK(wire::len(2, "testing") == "\x12\x07testing");  // the spec's own example
    CHECK(wire::len(4, "") == std::string("\x22\x00", 2));
    CHECK(wire::dbl(2, 1.0) == std::string("\x11\x00\x00\x00\x00\x00\x00\xf0\x3f", 9));
  }
}
