#pragma once
// AbuseGuard: per-connection limits on what an HTTP/2 peer may make us do (RFC 9113 10.5), decided before
// nghttp2 processes each frame. Pure: frame headers and times in, a verdict out; the session turns a
// violation into GOAWAY(code) and closes the connection, so the work an abusive peer causes is bounded by
// the limits below, not by how much it sends.
//
//   - control frames (PING, SETTINGS, PRIORITY, unknown types): token bucket; each costs us a reply or a
//     state change and carries no data (SETTINGS/PING flood, CVE-2019-9512/9515, priority CVE-2019-9513);
//   - empty frames: consecutive DATA/HEADERS frames with no payload and no END flag (CVE-2019-9518);
//   - header blocks: the compressed size of a HEADERS frame. CONTINUATION frames never reach the guard
//     (nghttp2 does not report them before parsing); nghttp2 caps them per block (max_continuations, set from
//     AbuseLimits) and the session caps the decoded header list (max_header_list: the stream is reset);
//   - premature resets: streams the peer resets before we answered them (rapid reset, CVE-2023-44487);
//   - refused streams: requests refused because too many of the peer's requests are still being served
//     (reset streams whose handlers have not finished count too), over the stream limit, with a header list
//     over the limit, or otherwise answered with a stream error (malformed).
// Every violation is ENHANCE_YOUR_CALM (0xb): the peer's frames were valid one by one, the pattern is abuse.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "common/base/token_bucket.h"
#include "common/h2/settings.h"

namespace ambient::h2 {

inline constexpr std::uint32_t kEnhanceYourCalm = 0xb;

// The 9-byte frame header (RFC 9113 4.1).
struct FrameHead {
  std::uint8_t type = 0;
  std::uint8_t flags = 0;
  std::uint32_t length = 0;
  std::int32_t stream_id = 0;
};

struct Violation {
  std::uint32_t code = kEnhanceYourCalm;  // the GOAWAY error code
  std::string reason;                     // for the log and the session's error
};

class AbuseGuard {
 public:
  using Clock = std::chrono::steady_clock;

  // `max_header_block`: compressed bytes one HEADERS frame may carry.
  AbuseGuard(const AbuseLimits& limits, std::uint32_t max_header_block, Clock::time_point now);

  std::optional<Violation> on_frame(const FrameHead& frame, Clock::time_point now);
  std::optional<Violation> on_premature_reset(Clock::time_point now);
  std::optional<Violation> on_refused_stream(Clock::time_point now);

  std::uint64_t premature_resets() const noexcept { return premature_resets_; }
  std::uint64_t refused_streams() const noexcept { return refused_streams_; }

 private:
  AbuseLimits limits_;
  std::uint32_t max_header_block_;
  TokenBucket control_;
  TokenBucket resets_;
  TokenBucket refused_;
  std::uint32_t empty_run_ = 0;  // consecutive empty frames
  std::uint64_t premature_resets_ = 0, refused_streams_ = 0;
};

}  // namespace ambient::h2
