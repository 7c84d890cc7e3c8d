#pragma once
// Loopback HTTP/2 fixture for the h2 tests: a server session per accepted TCP connection (h2c, no TLS:
// TLS is covered in test/common/hbone) running `handler` per stream, and client sessions to it.
#include <memory>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/h2/session.h"
#include "common/net/tcp_stream.h"

namespace ambient::test {

namespace asio = boost::asio;

// Settings without keepalive PINGs (tests that are not about keepalive).
inline h2::Settings quiet() {
  h2::Settings s;
  s.ping_interval = std::chrono::milliseconds(0);
  return s;
}

// Sleeps; a cancelled sleep (the loser of an `||`) just returns.
inline asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

// Echo handler: 200, then every byte back, END_STREAM after the client's END_STREAM.
inline asio::awaitable<void> echo_handler(std::shared_ptr<h2::Stream> s) {
  if (!s->respond(200)) co_return;
  std::vector<std::uint8_t> buf(64 << 10);
  for (;;) {
    auto n = co_await s->read_some(buf);
    if (!n) co_return;
    if (*n == 0) break;
    if (!co_await s->write_all(std::span<const std::uint8_t>(buf.data(), *n))) co_return;
  }
  (void)co_await s->shutdown_write();
}

struct H2Server {
  asio::io_context& io;
  asio::ip::tcp::acceptor acceptor;
  h2::Settings settings;
  h2::Session::Handler handler;
  std::vector<std::shared_ptr<h2::Session>> sessions;

  H2Server(asio::io_context& io_, h2::Settings s, h2::Session::Handler h)
      : io(io_), acceptor(*net::listen(io_.get_executor(), {asio::ip::make_address("127.0.0.1"), 0})),
        settings(s), handler(std::move(h)) {
    asio::co_spawn(io, accept_loop(), asio::detached);
  }
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto c = co_await net::accept(acceptor);
      if (!c) co_return;
      auto s = h2::Session::server(io.get_executor(), h2::make_transport(std::move(*c)), settings, handler, "client");
      if (!s) co_return;
      sessions.push_back(*s);
      asio::co_spawn(io, [s = *s]() -> asio::awaitable<void> { (void)co_await s->run(); }, asio::detached);
    }
  }
  void stop() {
    boost::system::error_code ec;
    acceptor.close(ec);
    for (auto& s : sessions) s->terminate(0);
  }
};

// Connects a client session to 127.0.0.1:port and starts it; `done` is set with run()'s result.
inline asio::awaitable<Result<std::shared_ptr<h2::Session>>> connect_client(std::uint16_t port, h2::Settings settings,
                                                                           std::shared_ptr<Result<void>> done = nullptr) {
  auto c = co_await net::connect({asio::ip::make_address("127.0.0.1"), port}, std::chrono::seconds(5));
  if (!c) co_return std::move(c).error();
  auto ex = co_await asio::this_coro::executor;
  auto s = h2::Session::client(ex, h2::make_transport(std::move(*c)), settings, "server");
  if (!s) co_return std::move(s).error();
  asio::co_spawn(ex, [s = *s, done]() -> asio::awaitable<void> {
        auto r = co_await s->run();
        if (done) *done = std::move(r);
      }, asio::detached);
  co_return *s;
}

inline std::vector<std::uint8_t> pattern(std::size_t n, std::uint32_t seed = 1) {
  std::vector<std::uint8_t> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    b = static_cast<std::uint8_t>(x);
  }
  return v;
}

// Writes `data` in chunks, half-closes, and reads everything back until EOF.
template <typename S>
asio::awaitable<Result<std::vector<std::uint8_t>>> send_and_receive(S& s, const std::vector<std::uint8_t>& data,
                                                                    std::size_t chunk = 256 << 10) {
  using namespace asio::experimental::awaitable_operators;
  Result<void> wr = ok();
  std::vector<std::uint8_t> got;
  got.reserve(data.size());
  Result<void> rd = ok();
  auto writer = [&]() -> asio::awaitable<void> {
    for (std::size_t off = 0; off < data.size(); off += chunk) {
      auto r = co_await s.write_all(std::span<const std::uint8_t>(data.data() + off, std::min(chunk, data.size() - off)));
      if (!r) { wr = r; co_return; }
    }
    wr = co_await s.shutdown_write();
  };
  auto reader = [&]() -> asio::awaitable<void> {
    std::vector<std::uint8_t> buf(64 << 10);
    for (;;) {
      auto n = co_await s.read_some(buf);
      if (!n) { rd = std::move(n).error(); co_return; }
      if (*n == 0) co_return;
      got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    }
  };
  co_await (writer() && reader());
  if (!wr) co_return wr.error();
  if (!rd) co_return rd.error();
  co_return got;
}

}  // namespace ambient::test
