#include "common/h2/abuse_guard.h"

#include <fmt/format.h>

namespace ambient::h2 {

namespace {

// Frame types and flags (RFC 9113 6).
constexpr std::uint8_t kData = 0x0, kHeaders = 0x1, kPriority = 0x2, kSettings = 0x4, kPushPromise = 0x5,
                       kPing = 0x6, kLastKnownType = 0x9;
constexpr std::uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4;

Violation violation(std::string reason) { return Violation{kEnhanceYourCalm, std::move(reason)}; }

}  // namespace

AbuseGuard::AbuseGuard(const AbuseLimits& limits, std::uint32_t max_header_block, Clock::time_point now)
    : limits_(limits), max_header_block_(max_header_block),
      control_(limits.control_frame_burst, limits.control_frames_per_second, now),
      resets_(limits.premature_reset_burst, limits.premature_resets_per_second, now),
      refused_(limits.refused_stream_burst, limits.refused_streams_per_second, now) {}

std::optional<Violation> AbuseGuard::on_frame(const FrameHead& f, Clock::time_point now) {
  const bool control = (f.type == kPing && !(f.flags & kAck)) || (f.type == kSettings && !(f.flags & kAck)) ||
                       f.type == kPriority || f.type > kLastKnownType;
  if (control && !control_.take(now))
    return violation(fmt::format("control frame flood: over {} PING/SETTINGS/PRIORITY/unknown frames (then {}/s)",
                                 limits_.control_frame_burst, limits_.control_frames_per_second));

  // nghttp2 reports HEADERS but not their CONTINUATIONs here; it bounds those itself (max_continuations).
  bool empty = false;
  switch (f.type) {
    case kData:
      empty = f.length == 0 && !(f.flags & kEndStream);
      break;
    case kHeaders:
    case kPushPromise:
      empty = f.length == 0 && !(f.flags & (kEndStream | kEndHeaders));
      if (f.length > max_header_block_)
        return violation(fmt::format("header block of {} bytes on stream {} is over the {}-byte limit", f.length,
                                     f.stream_id, max_header_block_));
      break;
    default:
      break;
  }
  if (!empty) {
    empty_run_ = 0;
  } else if (++empty_run_ > limits_.max_empty_frames) {
    return violation(fmt::format("empty frame flood: over {} consecutive frames without payload", limits_.max_empty_frames));
  }
  return std::nullopt;
}

std::optional<Violation> AbuseGuard::on_premature_reset(Clock::time_point now) {
  ++premature_resets_;
  if (resets_.take(now)) return std::nullopt;
  return violation(fmt::format("rapid reset: over {} streams reset before their response (then {}/s)",
                               limits_.premature_reset_burst, limits_.premature_resets_per_second));
}

std::optional<Violation> AbuseGuard::on_refused_stream(Clock::time_point now) {
  ++refused_streams_;
  if (refused_.take(now)) return std::nullopt;
  return violation(fmt::format("too many refused streams: over {} requests refused for stream limits, header size or errors (then {}/s)",
                               limits_.refused_stream_burst, limits_.refused_streams_per_second));
}

}  // namespace ambient::h2
