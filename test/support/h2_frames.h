#pragma once
// Raw HTTP/2 frames for abuse tests: a hostile client writes exactly the frames it wants (floods,
// rapid resets, endless CONTINUATIONs), bypassing any client library's own limits, and reads back what
// the server sent until it closes. HPACK: literal fields without indexing (RFC 7541 6.2.2), no Huffman.
#include <chrono>
#include <cstdint>
#include <span>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace ambient::test::h2frames {

inline constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
enum : std::uint8_t { kData = 0, kHeaders = 1, kPriority = 2, kRstStream = 3, kSettings = 4, kPing = 6, kGoaway = 7,
                      kWindowUpdate = 8, kContinuation = 9 };
enum : std::uint8_t { kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4 };

inline void put32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

inline std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, std::string_view payload = {}) {
  std::string f;
  const auto len = static_cast<std::uint32_t>(payload.size());
  f.push_back(static_cast<char>((len >> 16) & 0xff));
  f.push_back(static_cast<char>((len >> 8) & 0xff));
  f.push_back(static_cast<char>(len & 0xff));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  put32(f, stream & 0x7fffffffu);
  f.append(payload);
  return f;
}

// HPACK integer with a 7-bit prefix (RFC 7541 5.1), H bit clear.
inline void hpack_length(std::string& out, std::size_t n) {
  if (n < 127) {
    out.push_back(static_cast<char>(n));
    return;
  }
  out.push_back(static_cast<char>(127));
  n -= 127;
  while (n >= 128) {
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
}

// One header field, literal without indexing, new name.
inline std::string hpack_field(std::string_view name, std::string_view value) {
  std::string out(1, '\0');
  hpack_length(out, name.size());
  out.append(name);
  hpack_length(out, value.size());
  out.append(value);
  return out;
}

inline std::string hpack_block(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [n, v] : fields) out += hpack_field(n, v);
  return out;
}

// A CONNECT request's header block (HBONE's shape).
inline std::string connect_block(std::string_view authority) {
  return hpack_block({{":method", "CONNECT"}, {":authority", std::string(authority)}});
}

inline std::string settings(std::vector<std::pair<std::uint16_t, std::uint32_t>> entries = {}) {
  std::string p;
  for (const auto& [id, v] : entries) {
    p.push_back(static_cast<char>(id >> 8));
    p.push_back(static_cast<char>(id & 0xff));
    put32(p, v);
  }
  return frame(kSettings, 0, 0, p);
}
inline std::string settings_ack() { return frame(kSettings, kAck, 0); }
inline std::string ping(std::uint64_t opaque = 0) {
  std::string p;
  put32(p, static_cast<std::uint32_t>(opaque >> 32));
  put32(p, static_cast<std::uint32_t>(opaque));
  return frame(kPing, 0, 0, p);
}
inline std::string rst_stream(std::uint32_t stream, std::uint32_t code) {
  std::string p;
  put32(p, code);
  return frame(kRstStream, 0, stream, p);
}
inline std::string headers(std::uint32_t stream, std::string_view block, std::uint8_t flags = kEndHeaders) {
  return frame(kHeaders, flags, stream, block);
}

// What the server sent: frames by type, PING/SETTINGS ACKs, RST_STREAM codes, the GOAWAY (if any).
struct ServerFrames {
  std::map<std::uint8_t, std::size_t> count;  // frames per type
  std::size_t settings_acks = 0, ping_acks = 0, responses = 0;  // HEADERS frames = responses here
  std::map<std::uint32_t, std::size_t> resets;  // RST_STREAM count per error code
  std::optional<std::uint32_t> goaway_code;
  std::uint32_t goaway_last_stream = 0;
  std::size_t bytes = 0;
};

inline ServerFrames parse_server_frames(const std::vector<std::uint8_t>& in) {
  ServerFrames r;
  r.bytes = in.size();
  auto u32 = [&](std::size_t at) {
    return (std::uint32_t{in[at]} << 24) | (std::uint32_t{in[at + 1]} << 16) | (std::uint32_t{in[at + 2]} << 8) | in[at + 3];
  };
  for (std::size_t off = 0; off + 9 <= in.size();) {
    const std::size_t len = (std::size_t{in[off]} << 16) | (std::size_t{in[off + 1]} << 8) | in[off + 2];
    const std::uint8_t type = in[off + 3], flags = in[off + 4];
    if (off + 9 + len > in.size()) break;
    ++r.count[type];
    const std::size_t p = off + 9;
    if (type == kSettings && (flags & kAck)) ++r.settings_acks;
    if (type == kPing && (flags & kAck)) ++r.ping_acks;
    if (type == kHeaders) ++r.responses;
    if (type == kRstStream && len >= 4) ++r.resets[u32(p)];
    if (type == kGoaway && len >= 8) {
      r.goaway_last_stream = u32(p) & 0x7fffffffu;
      r.goaway_code = u32(p + 4);
    }
    off = p + len;
  }
  return r;
}

struct AttackResult {
  ServerFrames frames;
  bool closed = false;  // the server ended the connection within the limit
  std::chrono::milliseconds took{};
};

// Writes the preface and `bytes` on `stream` (plain TCP or TLS) while reading, until the server closes
// the connection or `limit` passes. The writer keeps the connection open: the server must close it.
template <typename S>
boost::asio::awaitable<AttackResult> attack(S& stream, std::string bytes, std::chrono::milliseconds limit) {
  using namespace boost::asio::experimental::awaitable_operators;
  namespace asio = boost::asio;
  AttackResult out;
  const std::string all = std::string(kPreface) + bytes;
  std::vector<std::uint8_t> got;
  const auto started = std::chrono::steady_clock::now();
  auto sleep = [](std::chrono::milliseconds d) -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  };
  auto writer = [&]() -> asio::awaitable<void> {
    (void)co_await stream.write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(all.data()), all.size()));
    co_await sleep(limit);
  };
  auto reader = [&]() -> asio::awaitable<void> {
    std::vector<std::uint8_t> buf(64 << 10);
    for (;;) {
      auto n = co_await stream.read_some(buf);
      if (!n || *n == 0) break;
      got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    }
    out.closed = true;
  };
  co_await ((writer() || reader()) || sleep(limit));
  out.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  out.frames = parse_server_frames(got);
  co_return out;
}

}  // namespace ambient::test::h2frames
