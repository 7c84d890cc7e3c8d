// HTTP/2 abuse limits on a server session (common/h2/abuse_guard.h), end to end on loopback: a hostile
// client writes raw frames (test/support/h2_frames.h) and reads what the server answers until it closes.
// Every case checks the GOAWAY code, that the server stopped after a bounded amount of work (ACKs sent,
// handlers run, streams processed), and the reason it recorded.
#include <doctest/doctest.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <fmt/format.h>
#include <nghttp2/nghttp2.h>

#include "test/common/h2/h2_fixture.h"
#include "test/support/h2_frames.h"
#include "test/support/run_coro.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace hf = ambient::test::h2frames;

namespace {

using hf::AttackResult;

// One plain-TCP connection to the server, attacked with `bytes` (h2_frames.h: preface + bytes).
asio::awaitable<AttackResult> attack(std::uint16_t port, std::string bytes, std::chrono::milliseconds limit = 5s) {
  auto c = co_await net::connect({asio::ip::make_address("127.0.0.1"), port}, 5s);
  REQUIRE(c);
  co_return co_await hf::attack(*c, std::move(bytes), limit);
}

// A handler that counts requests and answers after `delay` (ztunnel's 15008 connects upstream first).
asio::awaitable<void> slow_answer(std::shared_ptr<int> calls, std::chrono::milliseconds delay, std::shared_ptr<h2::Stream> s) {
  ++*calls;
  co_await sleep_for(delay);
  (void)s->respond(200, {}, true);
}
h2::Session::Handler counting(std::shared_ptr<int> calls, std::chrono::milliseconds delay = 0ms) {
  return [calls, delay](std::shared_ptr<h2::Stream> s) { return slow_answer(calls, delay, std::move(s)); };
}

std::string repeat(const std::string& piece, int n) {
  std::string out;
  out.reserve(piece.size() * static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) out += piece;
  return out;
}

// A request header block as HEADERS + CONTINUATION frames of 16 KiB (the frame size before SETTINGS are acked).
std::string split_request(std::uint32_t id, const std::string& block) {
  std::string out;
  for (std::size_t off = 0; off < block.size(); off += 16384) {
    const bool last = off + 16384 >= block.size();
    const std::string piece = block.substr(off, 16384);
    out += off == 0 ? hf::headers(id, piece, last ? hf::kEndHeaders : 0)
                    : hf::frame(hf::kContinuation, last ? hf::kEndHeaders : 0, id, piece);
  }
  return out;
}

std::string reason_of(const H2Server& server) {
  for (const auto& s : server.sessions)
    if (s->abuse()) return s->abuse()->reason;
  return "";
}

}  // namespace

TEST_SUITE("common/h2/abuse") {
  TEST_CASE("rapid reset (CVE-2023-44487): HEADERS + RST_STREAM pairs end in GOAWAY(ENHANCE_YOUR_CALM)") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    H2Server server(io, quiet(), counting(calls, 50ms));
    std::string frames = hf::settings();
    for (std::uint32_t i = 0; i < 5000; ++i) {
      const std::uint32_t id = 2 * i + 1;
      frames += hf::headers(id, hf::connect_block("10.0.0.1:80")) + hf::rst_stream(id, NGHTTP2_CANCEL);
    }
    auto r = run_coro(io, attack(server.port(), frames));
    CHECK(r.closed);
    REQUIRE(r.frames.goaway_code.has_value());
    CHECK(*r.frames.goaway_code == h2::kEnhanceYourCalm);
    // The premature-reset budget is 200 (+50/s): the server stopped near stream 2*200+1, not 10,000.
    CHECK(r.frames.goaway_last_stream <= 2 * 260 + 1);
    CHECK(*calls <= 200);  // reset streams get no handler at all when HEADERS and RST arrive together
    CHECK(reason_of(server).find("rapid reset") != std::string::npos);
    server.stop();
  }

  TEST_CASE("cancelling streams after their response is not abuse: 1,000 in a row keep the connection") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    H2Server server(io, quiet(), counting(calls));
    bool alive = false;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await connect_client(server.port(), quiet());
      REQUIRE(c);
      for (int i = 0; i < 1000; ++i) {
        auto s = co_await (*c)->connect("10.0.0.1:80", {}, 5s);
        REQUIRE(s);
        (*s)->close();  // RST_STREAM(CANCEL) after the 200
      }
      co_await sleep_for(50ms);
      alive = (*c)->alive() && !(*c)->draining();
    }());
    CHECK(alive);
    CHECK(*calls == 1000);
    CHECK(reason_of(server).empty());
    server.stop();
  }

  TEST_CASE("SETTINGS flood: GOAWAY(ENHANCE_YOUR_CALM) after about 1,000 ACKs") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    H2Server server(io, quiet(), counting(calls));
    auto r = run_coro(io, attack(server.port(), repeat(hf::settings(), 20000)));
    CHECK(r.closed);
    REQUIRE(r.frames.goaway_code.has_value());
    CHECK(*r.frames.goaway_code == h2::kEnhanceYourCalm);
    CHECK(r.frames.settings_acks <= 1100);
    CHECK(reason_of(server).find("control frame flood") != std::string::npos);  // ours or nghttp2's ACK queue
    server.stop();
  }

  TEST_CASE("PING flood: GOAWAY(ENHANCE_YOUR_CALM) after about 1,000 ACKs") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    H2Server server(io, quiet(), counting(calls));
    auto r = run_coro(io, attack(server.port(), hf::settings() + repeat(hf::ping(7), 20000)));
    CHECK(r.closed);
    REQUIRE(r.frames.goaway_code.has_value());
    CHECK(*r.frames.goaway_code == h2::kEnhanceYourCalm);
    CHECK(r.frames.ping_acks <= 1100);
    CHECK(reason_of(server).find("control frame flood") != std::string::npos);
    server.stop();
  }

  TEST_CASE("PRIORITY and unknown frame types count as control frames") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    H2Server server(io, quiet(), counting(calls));
    const std::string priority = hf::frame(hf::kPriority, 0, 3, std::string("\x00\x00\x00\x01\x10", 5));
    const std::string unknown = hf::frame(0x42, 0, 0, "x");
    auto r = run_coro(io, attack(server.port(), hf::settings() + repeat(priority + unknown, 5000)));
    CHECK(r.closed);
    REQUIRE(r.frames.goaway_code.has_value());
    CHECK(*r.frames.goaway_code == h2::kEnhanceYourCalm);
    server.stop();
  }

  TEST_CASE("empty DATA frames flood (CVE-2019-9518): GOAWAY(ENHANCE_YOUR_CALM) after 16") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    H2Server server(io, quiet(), counting(calls, 2s));
    auto r = run_coro(io, attack(server.port(), hf::settings() + hf::headers(1, hf::connect_block("10.0.0.1:80")) +
                                                    repeat(hf::frame(hf::kData, 0, 1), 10000)));
    CHECK(r.closed);
    REQUIRE(r.frames.goaway_code.has_value());
    CHECK(*r.frames.goaway_code == h2::kEnhanceYourCalm);
    CHECK(reason_of(server).find("empty frame flood") != std::string::npos);
    server.stop();
  }

  TEST_CASE("CONTINUATION flood: GOAWAY(ENHANCE_YOUR_CALM), no handler runs") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    H2Server server(io, quiet(), counting(calls));
    const std::string cont = hf::frame(hf::kContinuation, 0, 1, hf::hpack_field("x-a", "b"));
    auto r = run_coro(io, attack(server.port(), hf::settings() + hf::headers(1, hf::connect_block("10.0.0.1:80"), 0) +
                                                    repeat(cont, 100000)));
    CHECK(r.closed);
    REQUIRE(r.frames.goaway_code.has_value());
    CHECK(*r.frames.goaway_code == h2::kEnhanceYourCalm);
    CHECK(*calls == 0);
    server.stop();
  }

  TEST_CASE("oversized header blocks end the connection") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    H2Server server(io, quiet(), counting(calls));
    SUBCASE("one HEADERS frame of 200 KiB (after SETTINGS allow 1 MiB frames): the compressed limit (2 x 64 KiB + 1 KiB)") {
      std::string fields;
      for (int i = 0; i < 200; ++i) fields += hf::hpack_field(fmt::format("x-f{}", i), std::string(1024, 'a'));
      auto r = run_coro(io, attack(server.port(), hf::settings() + hf::settings_ack() +
                                                      hf::headers(1, hf::connect_block("10.0.0.1:80") + fields)));
      CHECK(r.closed);
      REQUIRE(r.frames.goaway_code.has_value());
      CHECK(*r.frames.goaway_code == h2::kEnhanceYourCalm);
      CHECK(*calls == 0);
      CHECK(reason_of(server).find("header block of") != std::string::npos);
    }
    SUBCASE("300 fields of 1 KiB over 16 KiB frames: the stream is reset at 64 KiB, the 17th CONTINUATION ends it") {
      std::string fields;
      for (int i = 0; i < 300; ++i) fields += hf::hpack_field(fmt::format("x-f{}", i), std::string(1024, 'a'));
      auto r = run_coro(io, attack(server.port(), hf::settings() + split_request(1, hf::connect_block("10.0.0.1:80") + fields)));
      CHECK(r.closed);
      REQUIRE(r.frames.goaway_code.has_value());
      CHECK(*r.frames.goaway_code == h2::kEnhanceYourCalm);
      CHECK(*calls == 0);
      CHECK(reason_of(server).find("CONTINUATION flood") != std::string::npos);
    }
    SUBCASE("one 300 KiB field: nghttp2's HPACK decoder refuses a field over 64 KiB (COMPRESSION_ERROR)") {
      const std::string block = hf::connect_block("10.0.0.1:80") + hf::hpack_field("x-big", std::string(300 << 10, 'a'));
      auto r = run_coro(io, attack(server.port(), hf::settings() + split_request(1, block)));
      CHECK(r.closed);
      REQUIRE(r.frames.goaway_code.has_value());
      CHECK(*r.frames.goaway_code == NGHTTP2_COMPRESSION_ERROR);
      CHECK(*calls == 0);
    }
    server.stop();
  }

  TEST_CASE("header lists over the decoded limit: each stream is reset, a stream of them ends the connection") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    H2Server server(io, quiet(), counting(calls));
    // 70 fields of 1 KiB: over max_header_list (64 KiB) decoded, under the compressed block limit.
    std::string fields;
    for (int i = 0; i < 70; ++i) fields += hf::hpack_field(fmt::format("x-f{}", i), std::string(1024, 'a'));
    auto request = [&](std::uint32_t id) { return split_request(id, hf::connect_block("10.0.0.1:80") + fields); };
    SUBCASE("one: the stream is reset, the connection stays") {
      auto r = run_coro(io, attack(server.port(), hf::settings() + request(1), 1s));
      CHECK_FALSE(r.frames.goaway_code.has_value());
      CHECK(r.frames.count[hf::kRstStream] == 1);
      CHECK(*calls == 0);
    }
    SUBCASE("150: GOAWAY(ENHANCE_YOUR_CALM) once the refused-stream budget (100) is spent") {
      std::string frames = hf::settings();
      for (std::uint32_t i = 0; i < 150; ++i) frames += request(2 * i + 1);
      auto r = run_coro(io, attack(server.port(), frames));
      CHECK(r.closed);
      REQUIRE(r.frames.goaway_code.has_value());
      CHECK(*r.frames.goaway_code == h2::kEnhanceYourCalm);
      CHECK(r.frames.count[hf::kRstStream] <= 101);
      CHECK(*calls == 0);
      CHECK(reason_of(server).find("refused streams") != std::string::npos);
    }
    server.stop();
  }

  TEST_CASE("stream limit: a request past the acknowledged limit ends the connection (PROTOCOL_ERROR), never served") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    h2::Settings settings = quiet();
    settings.max_concurrent_streams = 100;
    H2Server server(io, settings, counting(calls, 3s));
    std::string frames = hf::settings() + hf::settings_ack();
    for (std::uint32_t i = 0; i < 150; ++i) frames += hf::headers(2 * i + 1, hf::connect_block("10.0.0.1:80"));
    auto r = run_coro(io, attack(server.port(), frames, 1s));
    CHECK(*calls == 100);
    // RFC 9113 5.1.2: past the acknowledged limit is a protocol violation; nghttp2 ends the connection.
    CHECK(r.closed);
    REQUIRE(r.frames.goaway_code.has_value());
    CHECK(*r.frames.goaway_code == NGHTTP2_PROTOCOL_ERROR);
    CHECK(r.frames.goaway_last_stream <= 2 * 100 + 1);
    server.stop();
  }

  TEST_CASE("handlers of reset streams still count: requests past the handler limit are refused, then GOAWAY") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    h2::Settings settings = quiet();
    settings.max_concurrent_streams = 100;
    H2Server server(io, settings, counting(calls, 3s));
    std::string first = hf::settings();
    for (std::uint32_t i = 0; i < 100; ++i) first += hf::headers(2 * i + 1, hf::connect_block("10.0.0.1:80"));
    std::string second;
    for (std::uint32_t i = 0; i < 100; ++i) second += hf::rst_stream(2 * i + 1, NGHTTP2_CANCEL);
    for (std::uint32_t i = 100; i < 300; ++i) second += hf::headers(2 * i + 1, hf::connect_block("10.0.0.1:80"));
    AttackResult r;
    run_coro(io, [&]() -> asio::awaitable<void> {
      // Two writes: the first 100 handlers must be running before their streams are reset.
      using namespace asio::experimental::awaitable_operators;
      auto c = co_await net::connect({asio::ip::make_address("127.0.0.1"), server.port()}, 5s);
      REQUIRE(c);
      const std::string one = std::string(hf::kPreface) + first;
      REQUIRE(co_await c->write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(one.data()), one.size())));
      for (int i = 0; i < 100 && *calls < 100; ++i) co_await sleep_for(10ms);
      REQUIRE(*calls == 100);
      (void)co_await c->write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(second.data()), second.size()));
      std::vector<std::uint8_t> got, buf(64 << 10);
      auto reader = [&]() -> asio::awaitable<void> {
        for (;;) {
          auto n = co_await c->read_some(buf);
          if (!n || *n == 0) break;
          got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
        }
        r.closed = true;
      };
      co_await (reader() || sleep_for(2s));
      r.frames = hf::parse_server_frames(got);
    }());
    CHECK(*calls == 100);  // none of the 200 later requests got a handler
    CHECK(r.closed);
    REQUIRE(r.frames.goaway_code.has_value());
    CHECK(*r.frames.goaway_code == h2::kEnhanceYourCalm);
    CHECK(reason_of(server).find("refused streams") != std::string::npos);
    server.stop();
  }

  TEST_CASE("a flooding peer that never reads is still disconnected (GOAWAY linger is bounded)") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    H2Server server(io, quiet(), counting(calls));
    Result<void> write = ok();
    std::chrono::milliseconds took{};
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await net::connect({asio::ip::make_address("127.0.0.1"), server.port()}, 5s);
      REQUIRE(c);
      // PINGs forever, never reading the ACKs: the server's writes block, its guard still trips, and
      // the connection must be closed within the linger.
      const std::string burst = std::string(hf::kPreface) + hf::settings() + repeat(hf::ping(1), 4000);
      const auto started = std::chrono::steady_clock::now();
      write = co_await c->write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(burst.data()), burst.size()));
      const std::string more = repeat(hf::ping(2), 4000);
      while (write && std::chrono::steady_clock::now() - started < 5s)
        write = co_await c->write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(more.data()), more.size()));
      took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    }());
    CHECK_FALSE(write);
    CHECK(took < 4s);
    CHECK(reason_of(server).find("control frame flood") != std::string::npos);
    server.stop();
  }

  TEST_CASE("idle timeout: a server connection without streams is closed with GOAWAY(NO_ERROR); a busy one is not") {
    asio::io_context io(1);
    auto calls = std::make_shared<int>(0);
    h2::Settings settings = quiet();
    settings.idle_timeout = 300ms;
    H2Server server(io, settings, counting(calls, 800ms));
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto idle = co_await connect_client(server.port(), quiet());
      auto busy = co_await connect_client(server.port(), quiet());
      REQUIRE(idle);
      REQUIRE(busy);
      auto s = co_await (*busy)->connect("10.0.0.1:80", {}, 5s);  // answered after 800 ms
      REQUIRE(s);
      CHECK(*calls == 1);
      CHECK_FALSE((*idle)->alive());      // closed at ~300 ms while the busy one waited
      CHECK((*busy)->alive());             // its stream kept it open past the idle timeout
      co_await sleep_for(600ms);
      CHECK_FALSE((*busy)->alive());      // idle since its stream ended
    }());
    server.stop();
  }
}
