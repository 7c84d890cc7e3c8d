// Hand assembly of protobuf wire bytes for the golden tests in test/proto/.
// The tests spell every field number and wire type literally and build bytes with these helpers,
// never with the generated code, so renumbering a field in proto/*.proto fails a test.
//
// Wire format (protobuf encoding spec): a field is tag = varint((field << 3) | wire_type) followed
// by a varint (type 0), 8 bytes (type 1), varint length + payload (type 2) or 4 bytes (type 5).
// Varints are little-endian base-128, high bit = "more bytes follow".
#pragma once

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message_lite.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace wire {

enum WireType : std::uint32_t {
  kVarint = 0,
  kI64 = 1,
  kLen = 2,
  kI32 = 5,
};

inline std::string varint(std::uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

inline std::string tag(std::uint32_t field, WireType type) {
  return varint((std::uint64_t{field} << 3) | type);
}

// Varint-encoded scalar: uint32/64, int32/64 (non-negative), bool, enum.
inline std::string num(std::uint32_t field, std::uint64_t value) {
  return tag(field, kVarint) + varint(value);
}

// Length-delimited: string, bytes, embedded message, packed repeated scalars, map entry.
inline std::string len(std::uint32_t field, std::string_view payload) {
  return tag(field, kLen) + varint(payload.size()) + std::string(payload);
}

// Little-endian IEEE-754 double (wire type 1), e.g. google.protobuf.Value.number_value.
inline std::string dbl(std::uint32_t field, double value) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  std::string out = tag(field, kI64);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  return out;
}

// Deterministic serialization (map entries sorted by key), as the golden outputs assume.
inline std::string serialize(const google::protobuf::MessageLite& msg) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    msg.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace wire
