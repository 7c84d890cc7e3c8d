#pragma once
// HTTP/2 session settings. Defaults are Istio ztunnel's (reference ztunnel.md 3.4); environment names
// HTTP2_STREAM_WINDOW_SIZE / HTTP2_CONNECTION_WINDOW_SIZE / HTTP2_FRAME_SIZE map onto these fields.
#include <chrono>
#include <cstdint>

namespace ambient::h2 {

// Per-connection limits on peer behaviour (abuse_guard.h says what each one bounds).
struct AbuseLimits {
  std::uint32_t control_frame_burst = 1000;  // PING/SETTINGS/PRIORITY/unknown frames at once ...
  std::uint32_t control_frames_per_second = 100;  // ... and sustained
  std::uint32_t premature_reset_burst = 200;      // streams reset by the peer before our response
  std::uint32_t premature_resets_per_second = 50;
  std::uint32_t refused_stream_burst = 100;       // requests refused (stream/handler limit, header size, malformed)
  std::uint32_t refused_streams_per_second = 10;
  std::uint32_t max_empty_frames = 16;            // consecutive frames with no payload and no END flag
  std::uint32_t max_continuations = 16;           // CONTINUATION frames after one HEADERS (nghttp2 enforces it)
};

struct Settings {
  std::uint32_t stream_window = 4u << 20;       // SETTINGS_INITIAL_WINDOW_SIZE we grant per stream
  std::uint32_t connection_window = 16u << 20;  // connection-level receive window we grant
  std::uint32_t max_frame_size = 1u << 20;      // SETTINGS_MAX_FRAME_SIZE we accept
  std::uint32_t max_concurrent_streams = 100;   // server: advertised; client: our own cap per connection
  std::uint32_t max_header_list = 64u << 10;    // bytes of header names+values per header block
  std::chrono::milliseconds ping_interval{10'000};  // a PING after this much time (0 disables keepalive)
  std::chrono::milliseconds ping_timeout{20'000};   // no PING ACK within this → connection dropped
  // Output batching: the writer serialises frames until this many bytes are queued, then writes once.
  std::uint32_t write_batch = 256u << 10;
  // Server: a connection with no stream for this long gets GOAWAY(NO_ERROR) and closes (0: never).
  std::chrono::milliseconds idle_timeout{0};
  AbuseLimits abuse;
};

}  // namespace ambient::h2
