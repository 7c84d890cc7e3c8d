#pragma once
// gRPC metadata on the wire: custom headers, "-bin" binary values, and the grpc-timeout header.
//
// Wire facts (gRPC over HTTP/2 spec):
//   - Custom metadata names are lower-case [0-9a-z_.-]; names starting with "grpc-" and the HTTP/2
//     connection headers are reserved. ASCII values are printable 0x20..0x7E.
//   - Names ending in "-bin" carry arbitrary bytes, base64-encoded on the wire. We send unpadded base64
//     and accept padded or unpadded (as the spec requires of both sides).
//   - grpc-timeout = 1..8 ASCII digits followed by a unit: H (hours), M (minutes), S (seconds),
//     m (milliseconds), u (microseconds), n (nanoseconds).
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/base/result.h"
#include "common/h2/headers.h"

namespace ambient::grpc {

// The HTTP/2 header-list size of one field (RFC 9113 6.5.2): name + value + 32.
inline std::size_t header_field_size(std::string_view name, std::string_view value) noexcept {
  return name.size() + value.size() + 32;
}

// grpc-timeout value for `timeout`: the coarsest unit that states it exactly in ≤ 8 digits, else the
// finest unit that fits, rounded up (a deadline is never shortened): 100 ms → "100m", 5 s → "5S",
// 123456789 ns → "123457u". Non-positive values give "1n" (the smallest); nanoseconds::max() is "2562048H".
std::string encode_timeout(std::chrono::nanoseconds timeout);
// Parses a grpc-timeout value. Parse error for an empty value, more than 8 digits or an unknown unit.
// Saturates at nanoseconds::max() (≈ 292 years) for large hour counts.
Result<std::chrono::nanoseconds> parse_timeout(std::string_view value);

// Base64 (RFC 4648 standard alphabet) as used by "-bin" metadata.
std::string base64_encode(std::string_view bytes, bool pad = false);
Result<std::string> base64_decode(std::string_view text);  // padded or unpadded; Parse error otherwise

inline bool is_binary_header(std::string_view name) noexcept { return name.ends_with("-bin"); }

// Checks one custom metadata entry a caller wants to send. InvalidArgument naming the entry when the
// name is empty, not lower-case [0-9a-z_.-], a pseudo-header, "grpc-*", or an HTTP/2 connection or
// gRPC-owned header (content-type, te, user-agent, host, connection, ...); or when a non-"-bin" value
// has a byte outside 0x20..0x7E.
Result<void> validate_metadata(std::string_view name, std::string_view value);

// Received header fields as metadata: pseudo-headers dropped, "-bin" values base64-decoded (a value
// that does not decode is kept as received).
h2::Headers to_metadata(const h2::Headers& wire);

}  // namespace ambient::grpc
