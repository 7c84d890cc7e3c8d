#pragma once
// gRPC message framing (gRPC over HTTP/2, "Length-Prefixed-Message"):
//
//   Compressed-Flag (1 byte: 0 = identity, 1 = compressed with grpc-encoding)
//   Message-Length  (4 bytes, big-endian, unsigned)
//   Message         (Message-Length bytes)
//
// A stream's DATA carries any number of these back to back; frame boundaries need not match DATA
// frame boundaries. We never negotiate compression (we send no grpc-accept-encoding, so a conforming
// server sends identity), hence a set Compressed-Flag is refused as Unsupported.
//
// Limits: a received message is at most `max_message_size` bytes (default 4 MiB, grpc's default;
// ztunnel's xDS client allows 200 MiB). The bound is checked on the 5-byte prefix, before any of the
// body is buffered, so memory per decoder ≤ max_message_size + 5 bytes.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace ambient::grpc {

inline constexpr std::size_t kFrameHeaderSize = 5;
inline constexpr std::size_t kDefaultMaxMessageSize = 4u << 20;  // grpc's default receive limit
inline constexpr std::size_t kMaxWireMessageSize = 0xffffffffu;  // the 4-byte length field

// Appends one uncompressed frame holding `message` to `out`. InvalidArgument when the message does not
// fit the 32-bit length field.
Result<void> append_frame(std::string& out, std::string_view message);
// One frame holding `message` (prefix + copy of the bytes).
Result<std::string> encode_frame(std::string_view message);

// Incremental, bounded decoder of a stream of frames. Feed it bytes in any split; it returns each
// message once its last byte has arrived. After an error the decoder is poisoned: every later call
// returns the same error (the stream cannot be resynchronised).
class FrameDecoder {
 public:
  explicit FrameDecoder(std::size_t max_message_size = kDefaultMaxMessageSize)
      : max_message_size_(max_message_size) {}

  // Consumes bytes from the front of `in` (advancing it) until one message is complete, which is
  // returned, or `in` is exhausted (nullopt; the partial frame stays buffered). Errors:
  //   ResourceExhausted (code 8)  the announced length exceeds max_message_size
  //   Unsupported                 Compressed-Flag 1 (we never negotiate compression)
  //   Parse                       Compressed-Flag other than 0 or 1
  Result<std::optional<std::string>> next(std::span<const std::uint8_t>& in);

  // True while part of a frame is buffered: an end of stream now would truncate a message.
  bool mid_message() const noexcept { return header_len_ > 0; }
  std::size_t max_message_size() const noexcept { return max_message_size_; }

 private:
  std::size_t max_message_size_;
  std::array<std::uint8_t, kFrameHeaderSize> header_{};
  std::size_t header_len_ = 0;  // bytes of the prefix received (0..5); 5 = reading the body
  std::size_t body_len_ = 0;    // announced length of the message being read
  std::string body_;            // message bytes received so far (≤ body_len_)
  std::optional<Error> failed_;
};

}  // namespace ambient::grpc
