#include <doctest/doctest.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nghttp2/nghttp2.h>

#include "test/common/h2/h2_fixture.h"
#include "test/support/paths.h"
#include "test/support/run_coro.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

TEST_SUITE("common/h2/session") {
  TEST_CASE("CONNECT echo is byte-exact for 0 B, 1 KiB, 1 MiB, 64 MiB") {
    asio::io_context io(1);
    H2Server server(io, quiet(), echo_handler);
    for (std::size_t size : {std::size_t{0}, std::size_t{1} << 10, std::size_t{1} << 20, std::size_t{64} << 20}) {
      CAPTURE(size);
      auto data = pattern(size, static_cast<std::uint32_t>(size + 1));
      auto got = run_coro(io, [&]() -> asio::awaitable<Result<std::vector<std::uint8_t>>> {
        auto c = co_await connect_client(server.port(), quiet());
        if (!c) co_return c.error();
        auto st = co_await (*c)->connect("10.0.0.1:8080", {}, 5s);
        if (!st) co_return st.error();
        CHECK((*st)->status() == 200);
        auto r = co_await send_and_receive(**st, data);
        (*c)->shutdown();
        co_return r;
      }());
      REQUIRE_MESSAGE(got.has_value(), (got ? "" : got.error().message()));
      CHECK(got->size() == data.size());
      CHECK((*got == data));
    }
    server.stop();
  }

  TEST_CASE("100 concurrent CONNECT streams on one connection") {
    asio::io_context io(1);
    h2::Settings s = quiet();
    s.max_concurrent_streams = 100;
    H2Server server(io, s, echo_handler);
    int good = 0;
    std::size_t sessions_used = 0;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await connect_client(server.port(), s);
      REQUIRE(c);
      auto session = *c;
      std::vector<std::shared_ptr<h2::Stream>> streams;
      for (int i = 0; i < 100; ++i) {
        auto st = session->open_stream({{":method", "CONNECT"}, {":authority", fmt::format("10.0.0.{}:80", i)}});
        REQUIRE(st);
        streams.push_back(*st);
      }
      CHECK(session->active_streams() == 100);
      CHECK_FALSE(session->can_open_stream());
      auto one = [&](std::shared_ptr<h2::Stream> st, int i) -> asio::awaitable<void> {
        auto w = co_await st->wait_response(5s);
        if (!w) co_return;
        auto data = pattern(100'000 + static_cast<std::size_t>(i), static_cast<std::uint32_t>(i));
        auto got = co_await send_and_receive(*st, data, 7'000);
        if (got && *got == data) ++good;
      };
      std::vector<asio::awaitable<void>> tasks;
      int remaining = 100;
      asio::steady_timer all_done(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
      for (int i = 0; i < 100; ++i)
        asio::co_spawn(co_await asio::this_coro::executor,
                       [&, i]() -> asio::awaitable<void> {
                         co_await one(streams[static_cast<std::size_t>(i)], i);
                         if (--remaining == 0) all_done.cancel();
                       }, asio::detached);
      co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
      sessions_used = server.sessions.size();
      session->shutdown();
    }());
    CHECK(good == 100);
    CHECK(sessions_used == 1);
    server.stop();
  }

  TEST_CASE("half-close in both directions") {
    asio::io_context io(1);
    // Server: reads until the client's END_STREAM, then sends 3 MiB and ends.
    auto late_sender = [](std::shared_ptr<h2::Stream> s) -> asio::awaitable<void> {
      REQUIRE(s->respond(200));
      std::vector<std::uint8_t> buf(16 << 10);
      std::size_t total = 0;
      for (;;) {
        auto n = co_await s->read_some(buf);
        if (!n || *n == 0) break;
        total += *n;
      }
      auto reply = pattern(3 << 20, static_cast<std::uint32_t>(total));
      REQUIRE(co_await s->write_all(reply));
      REQUIRE(co_await s->shutdown_write());
    };
    // Server: ends its side at once, then keeps reading what the client sends and reports the count.
    auto early_closer = [](std::shared_ptr<h2::Stream> s) -> asio::awaitable<void> {
      REQUIRE(s->respond(200));
      REQUIRE(co_await s->shutdown_write());
      std::vector<std::uint8_t> buf(16 << 10);
      std::size_t total = 0;
      for (;;) {
        auto n = co_await s->read_some(buf);
        if (!n || *n == 0) break;
        total += *n;
      }
      CHECK(total == (2u << 20));
    };
    H2Server a(io, quiet(), late_sender);
    H2Server b(io, quiet(), early_closer);
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await connect_client(a.port(), quiet());
      REQUIRE(c);
      auto st = co_await (*c)->connect("10.0.0.1:80", {}, 5s);
      REQUIRE(st);
      auto sent = pattern(1 << 20, 9);
      REQUIRE(co_await (*st)->write_all(sent));
      REQUIRE(co_await (*st)->shutdown_write());  // our FIN; the server's data still flows back
      std::vector<std::uint8_t> buf(64 << 10), got;
      for (;;) {
        auto n = co_await (*st)->read_some(buf);
        REQUIRE(n);
        if (*n == 0) break;
        got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
      }
      CHECK((got == pattern(3 << 20, 1 << 20)));

      auto c2 = co_await connect_client(b.port(), quiet());
      REQUIRE(c2);
      auto st2 = co_await (*c2)->connect("10.0.0.1:80", {}, 5s);
      REQUIRE(st2);
      auto n = co_await (*st2)->read_some(buf);  // server's END_STREAM arrives first
      REQUIRE(n);
      CHECK(*n == 0);
      auto more = pattern(2 << 20, 3);
      REQUIRE(co_await (*st2)->write_all(more));  // our direction is still open
      REQUIRE(co_await (*st2)->shutdown_write());
      co_await sleep_for(200ms);
      (*c)->shutdown();
      (*c2)->shutdown();
    }());
    a.stop();
    b.stop();
  }

  TEST_CASE("reset mid-stream reaches the reader as StreamReset with the code, CANCEL and NO_ERROR included") {
    // A tunnel passes a cut stream on as a reset; were CANCEL or NO_ERROR before END_STREAM read as a clean
    // end, a truncated download would look complete to the app.
    for (const std::uint32_t code : {NGHTTP2_INTERNAL_ERROR, NGHTTP2_CANCEL, NGHTTP2_NO_ERROR}) {
      CAPTURE(code);
      asio::io_context io(1);
      auto resetter = [code](std::shared_ptr<h2::Stream> s) -> asio::awaitable<void> {
        REQUIRE(s->respond(200));
        std::vector<std::uint8_t> buf(16 << 10);
        auto n = co_await s->read_some(buf);
        if (n && *n > 0) REQUIRE(co_await s->write_all(std::span<const std::uint8_t>(buf.data(), *n)));
        s->reset(code);
      };
      H2Server server(io, quiet(), resetter);
      run_coro(io, [&]() -> asio::awaitable<void> {
        auto c = co_await connect_client(server.port(), quiet());
        REQUIRE(c);
        auto st = co_await (*c)->connect("10.0.0.1:80", {}, 5s);
        REQUIRE(st);
        auto data = pattern(1000);
        REQUIRE(co_await (*st)->write_all(data));
        std::vector<std::uint8_t> buf(64 << 10);
        std::size_t got = 0;
        Result<std::size_t> n = std::size_t{0};
        for (;;) {
          n = co_await (*st)->read_some(buf);
          if (!n || *n == 0) break;
          got += *n;
        }
        CHECK(got == 1000);  // the bytes sent before the reset are read first
        REQUIRE_FALSE(n);
        CHECK(n.error().kind == ErrorKind::StreamReset);
        CHECK(n.error().code == static_cast<int>(code));
        auto w = co_await (*st)->write_all(data);
        CHECK_FALSE(w);
        CHECK((*c)->alive());  // a stream reset leaves the connection up
        (*c)->shutdown();
      }());
      server.stop();
    }
  }

  TEST_CASE("non-200 CONNECT answer is an HttpStatus error") {
    asio::io_context io(1);
    auto refuse = [](std::shared_ptr<h2::Stream> s) -> asio::awaitable<void> {
      REQUIRE(s->respond(503, {}, true));
      co_return;
    };
    H2Server server(io, quiet(), refuse);
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await connect_client(server.port(), quiet());
      REQUIRE(c);
      auto st = co_await (*c)->connect("10.0.0.1:80", {}, 5s);
      REQUIRE_FALSE(st);
      CHECK(st.error().kind == ErrorKind::HttpStatus);
      CHECK(st.error().code == 503);
      (*c)->shutdown();
    }());
    server.stop();
  }

  TEST_CASE("backpressure: a reader that stalls 2 s bounds the writer to the window") {
    asio::io_context io(1);
    h2::Settings s = quiet();
    std::shared_ptr<h2::Stream> server_stream;
    asio::steady_timer got_stream(io, asio::steady_timer::time_point::max());
    auto hold = [&](std::shared_ptr<h2::Stream> st) -> asio::awaitable<void> {
      REQUIRE(st->respond(200));
      server_stream = st;
      got_stream.cancel();
      // Keep the handler alive until the test ends the stream.
      while (!st->finished()) co_await sleep_for(50ms);
    };
    H2Server server(io, s, hold);
    constexpr std::size_t kTotal = 256u << 20, kChunk = 1u << 20;
    std::size_t written = 0, written_at_2s = 0, buffered_at_2s = 0, server_conn_buffered_at_2s = 0;
    long rss_before = 0, rss_at_2s = 0;
    std::size_t received = 0;
    bool content_ok = true;
    run_coro(io, [&]() -> asio::awaitable<void> {
      using namespace asio::experimental::awaitable_operators;
      auto c = co_await connect_client(server.port(), s);
      REQUIRE(c);
      auto st = co_await (*c)->connect("10.0.0.1:80", {}, 5s);
      REQUIRE(st);
      if (!server_stream) co_await got_stream.async_wait(asio::as_tuple(asio::use_awaitable));
      auto chunk = pattern(kChunk, 5);
      rss_before = rss_bytes();
      auto writer = [&]() -> asio::awaitable<void> {
        while (written < kTotal) {
          if (!co_await (*st)->write_all(chunk)) co_return;
          written += kChunk;
        }
        (void)co_await (*st)->shutdown_write();
      };
      auto observer_then_reader = [&]() -> asio::awaitable<void> {
        co_await sleep_for(2s);
        written_at_2s = written;
        buffered_at_2s = server_stream->buffered_bytes();
        server_conn_buffered_at_2s = server.sessions.at(0)->buffered_bytes();
        rss_at_2s = rss_bytes();
        std::vector<std::uint8_t> buf(256 << 10);
        for (;;) {
          auto n = co_await server_stream->read_some(buf);
          if (!n || *n == 0) break;
          for (std::size_t i = 0; i < *n; ++i)
            if (buf[i] != chunk[(received + i) % kChunk]) { content_ok = false; break; }
          received += *n;
        }
      };
      co_await (writer() && observer_then_reader());
      (*c)->shutdown();
    }());
    MESSAGE("received ", received, " B; written before the reader woke: ", written_at_2s, " B; receiver buffered ", buffered_at_2s,
            " B; RSS growth ", (rss_at_2s - rss_before), " B");
    // The writer got at most one stream window (4 MiB) plus the chunk in flight past the stalled reader.
    CHECK(written_at_2s <= s.stream_window + kChunk);
    CHECK(buffered_at_2s <= s.stream_window);
    CHECK(server_conn_buffered_at_2s <= s.stream_window);
    CHECK(rss_at_2s - rss_before < static_cast<long>(s.stream_window) + (16l << 20));
    CHECK(received == kTotal);
    CHECK(content_ok);
    server.stop();
  }

  TEST_CASE("GOAWAY drains: the open stream finishes, new streams are refused") {
    asio::io_context io(1);
    H2Server server(io, quiet(), echo_handler);
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await connect_client(server.port(), quiet());
      REQUIRE(c);
      auto st = co_await (*c)->connect("10.0.0.1:80", {}, 5s);
      REQUIRE(st);
      co_await sleep_for(50ms);
      server.sessions.at(0)->shutdown();
      co_await sleep_for(100ms);
      CHECK((*c)->draining());
      CHECK_FALSE((*c)->can_open_stream());
      auto data = pattern(1 << 20, 4);
      auto got = co_await send_and_receive(**st, data);
      REQUIRE(got);
      CHECK((*got == data));
      co_await sleep_for(100ms);
      CHECK_FALSE((*c)->alive());  // no streams left after GOAWAY: the connection closed
    }());
    server.stop();
  }

  TEST_CASE("malformed HTTP/2 from a peer gets GOAWAY and a closed connection") {
    asio::io_context io(1);
    H2Server server(io, quiet(), echo_handler);
    std::vector<std::uint8_t> reply;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await net::connect({asio::ip::make_address("127.0.0.1"), server.port()}, 5s);
      REQUIRE(c);
      std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
      // SETTINGS (empty), then a DATA frame on stream 0: a connection error (PROTOCOL_ERROR).
      std::string frames("\x00\x00\x00\x04\x00\x00\x00\x00\x00" "\x00\x00\x04\x00\x00\x00\x00\x00\x00" "abcd", 22);
      std::string all = preface + frames;
      REQUIRE(co_await c->write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(all.data()), all.size())));
      std::vector<std::uint8_t> buf(4096);
      for (;;) {
        auto n = co_await c->read_some(buf);
        if (!n || *n == 0) break;
        reply.insert(reply.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
      }
    }());
    // Walk the frames the server sent: there must be a GOAWAY with PROTOCOL_ERROR, then EOF.
    bool goaway = false;
    std::uint32_t code = 0;
    for (std::size_t off = 0; off + 9 <= reply.size();) {
      const std::size_t len = (std::size_t{reply[off]} << 16) | (std::size_t{reply[off + 1]} << 8) | reply[off + 2];
      if (reply[off + 3] == NGHTTP2_GOAWAY && off + 9 + 8 <= reply.size()) {
        goaway = true;
        const auto* p = &reply[off + 9 + 4];
        code = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
      }
      off += 9 + len;
    }
    CHECK(goaway);
    CHECK(code == NGHTTP2_PROTOCOL_ERROR);
    server.stop();
  }

  TEST_CASE("keepalive: a peer that never answers PING is dropped after the timeout") {
    asio::io_context io(1);
    auto acceptor = *net::listen(io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0});
    std::shared_ptr<Result<void>> done = std::make_shared<Result<void>>(ok());
    bool finished = false;
    // A "server" that swallows everything and never answers.
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      auto c = co_await net::accept(acceptor);
      if (!c) co_return;
      std::vector<std::uint8_t> buf(4096);
      for (;;) {
        auto n = co_await c->read_some(buf);
        if (!n || *n == 0) co_return;
      }
    }, asio::detached);
    h2::Settings s;
    s.ping_interval = 100ms;
    s.ping_timeout = 300ms;
    auto started = std::chrono::steady_clock::now();
    std::chrono::steady_clock::duration took{};
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await connect_client(acceptor.local_endpoint().port(), s, done);
      REQUIRE(c);
      while ((*c)->alive()) co_await sleep_for(20ms);
      took = std::chrono::steady_clock::now() - started;
      // run() returns (and fills `done`) once its three loops have wound down, a little after alive().
      for (int i = 0; i < 100 && done->has_value(); ++i) co_await sleep_for(20ms);
      finished = true;
      boost::system::error_code ec;
      acceptor.close(ec);
    }());
    CHECK(finished);
    REQUIRE_FALSE(done->has_value());
    CHECK(done->error().kind == ErrorKind::Timeout);
    CHECK(took >= 300ms);
    CHECK(took < 2s);
  }
}

TEST_SUITE("common/h2/stream") {
  TEST_CASE("close() fails a blocked reader at once; an abandoned write_all resets the stream") {
    asio::io_context io(1);
    std::shared_ptr<h2::Stream> server_side;
    auto silent = [&](std::shared_ptr<h2::Stream> s) -> asio::awaitable<void> {
      REQUIRE(s->respond(200));
      server_side = s;
      while (!s->finished()) co_await sleep_for(20ms);
    };
    H2Server server(io, quiet(), silent);
    run_coro(io, [&]() -> asio::awaitable<void> {
      using namespace asio::experimental::awaitable_operators;
      auto c = co_await connect_client(server.port(), quiet());
      REQUIRE(c);
      auto st = co_await (*c)->connect("10.0.0.1:80", {}, 5s);
      REQUIRE(st);
      // A reader blocked on a silent peer; close() from another coroutine must wake it with Cancelled.
      Result<std::size_t> got = std::size_t{0};
      auto reader = [&]() -> asio::awaitable<void> {
        std::vector<std::uint8_t> buf(16);
        got = co_await (*st)->read_some(buf);
      };
      auto closer = [&]() -> asio::awaitable<void> {
        co_await sleep_for(50ms);
        (*st)->close();
      };
      const auto t0 = std::chrono::steady_clock::now();
      co_await (reader() && closer());
      CHECK(std::chrono::steady_clock::now() - t0 < 1s);
      REQUIRE_FALSE(got);
      CHECK(got.error().kind == ErrorKind::Cancelled);
      CHECK((*st)->was_reset());

      // write_all of 64 MiB to a peer that never reads stalls at the window; lose it to a timer.
      auto st2 = co_await (*c)->connect("10.0.0.1:81", {}, 5s);
      REQUIRE(st2);
      {
        auto big = std::make_unique<std::vector<std::uint8_t>>(pattern(64 << 20));
        auto r = co_await ((*st2)->write_all(*big) || sleep_for(200ms));
        CHECK(r.index() == 1);  // the timer won: the write was abandoned
        big.reset();            // the buffer is gone; nghttp2 must not read it any more
      }
      co_await sleep_for(100ms);
      CHECK((*st2)->finished());
      CHECK((*c)->alive());
      (*c)->shutdown();
    }());
    server.stop();
  }
}
