#pragma once
// Shared driver of fuzz_http1_request / fuzz_http1_response: feeds a connection's bytes to a parser the
// way the Reader does (in pieces, keeping what feed() did not consume, draining the body, reset() between
// messages) and checks the invariants every message must keep.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "test/fuzz/fuzz_support.h"
#include "waypoint/http1/codec.h"
#include "waypoint/http1/parser.h"

namespace ambient::fuzz::http1 {

using namespace ambient::waypoint::http1;

// Small limits, so the fuzzer reaches them within max_len.
inline Limits fuzz_limits() {
  Limits l;
  l.max_header_bytes = 2048;
  l.max_headers = 24;
  l.max_target = 512;
  return l;
}

// Input byte 0, low 3 bits: the piece size the bytes arrive in.
inline std::size_t piece_size(std::uint8_t b) {
  static constexpr std::size_t kSizes[] = {1, 2, 3, 7, 16, 61, 512, 1 << 20};
  return kSizes[b & 7];
}

inline std::span<const std::uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

inline void check_parse_error(const Error& e) {
  check_error(e, {ErrorKind::Parse, ErrorKind::Unsupported});
  const int s = answer_status(e);
  FUZZ_CHECK(s == 400 || s == 414 || s == 431 || s == 501 || s == 505, "parse error with status {}: {}", s, e.context);
}

inline void check_headers(const h2::Headers& hs, std::size_t max) {
  FUZZ_CHECK(hs.size() <= max, "{} fields over the limit {}", hs.size(), max);
  for (const auto& h : hs) {
    FUZZ_CHECK(!h.name.empty(), "empty field name");
    for (char c : h.name) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "field name {} not lower-cased", h.name);
    FUZZ_CHECK(h.value.find_first_of(std::string_view("\0\r\n", 3)) == std::string::npos, "NUL/CR/LF in the value of {}", h.name);
  }
}

// Drives `p` over `input` (in `piece`-sized arrivals). `on_head_done(p)` runs once per message when its
// head is parsed (before its body), `on_message(p, body_bytes)` once per complete message; both may
// inspect, neither may feed. `before_message(p)` runs after each reset() (and before the first message).
template <typename Parser, typename Before, typename OnMessage>
void drive(Parser& p, std::string_view input, std::size_t piece, Before before_message, OnMessage on_message) {
  std::string pending;
  std::size_t offered = 0;
  std::uint64_t body_bytes = 0;
  before_message(p);
  for (int rounds = 0; rounds < 1 << 20; ++rounds) {
    auto r = p.feed(bytes(pending));
    if (!r) {
      check_parse_error(r.error());
      return;
    }
    FUZZ_CHECK(*r <= pending.size(), "consumed {} of {}", *r, pending.size());
    pending.erase(0, *r);
    const auto b = p.body();
    FUZZ_CHECK(b.size() <= kBodyBufferLimit, "body buffer {} over the bound", b.size());
    FUZZ_CHECK(b.empty() || p.head_done(), "body before the head");
    body_bytes += b.size();
    p.consume_body(b.size());
    if (p.message_done() && p.body().empty()) {
      on_message(p, body_bytes);
      p.reset();
      body_bytes = 0;
      before_message(p);
      if (pending.empty() && offered == input.size()) return;
      continue;
    }
    if (*r == 0 && b.empty()) {
      if (offered == input.size()) break;
      const std::size_t n = std::min(piece, input.size() - offered);
      pending.append(input.substr(offered, n));
      offered += n;
    }
  }
  // EOF.
  if (!p.started()) return;
  auto e = p.feed_eof();
  if (!e) {
    FUZZ_CHECK(e.error().kind == ErrorKind::Closed || answer_status(e.error()) != 0, "EOF error: {}", e.error().message());
    return;
  }
  FUZZ_CHECK(p.message_done(), "feed_eof succeeded on an incomplete message");
  const auto b = p.body();
  body_bytes += b.size();
  p.consume_body(b.size());
  on_message(p, body_bytes);
}

}  // namespace ambient::fuzz::http1
