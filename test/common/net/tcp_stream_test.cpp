#include <doctest/doctest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <cerrno>
#include <optional>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include "common/net/tcp_stream.h"
#include "test/common/net/net_test_support.h"

using namespace ambient;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;

namespace {

const tcp::endpoint kLoopback{asio::ip::make_address("127.0.0.1"), 0};

// A connected pair over loopback: {client side, server side}.
awaitable<std::pair<net::TcpStream, net::TcpStream>> connected_pair() {
  auto ex = co_await asio::this_coro::executor;
  auto acc = net::listen(ex, kLoopback);
  REQUIRE(acc);
  auto [c, s] = co_await (net::connect(acc->local_endpoint(), 5s) && net::accept(*acc));
  REQUIRE(c);
  REQUIRE(s);
  co_return std::pair{std::move(*c), std::move(*s)};
}

std::span<const std::uint8_t> bytes(const char* s) {
  return {reinterpret_cast<const std::uint8_t*>(s), std::strlen(s)};
}

}  // namespace

TEST_SUITE("common/net/tcp_stream") {
  TEST_CASE("write, read, half-close: reads go on after our FIN, then EOF reads as 0") {
    test::run_fresh([](asio::io_context&) -> awaitable<void> {
      auto [client, server] = co_await connected_pair();
      CHECK(server.peer() == client.socket().local_endpoint());
      int nodelay = 0;
      socklen_t len = sizeof nodelay;
      ::getsockopt(server.socket().native_handle(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len);
      CHECK(nodelay != 0);  // accept() set it

      REQUIRE(co_await client.write_all(bytes("ping")));
      REQUIRE(co_await client.shutdown_write());

      std::array<std::uint8_t, 16> buf{};
      std::size_t got = 0;
      for (;;) {
        auto n = co_await server.read_some(buf);
        REQUIRE(n);
        if (*n == 0) break;  // the client's FIN
        got += *n;
      }
      CHECK(got == 4);
      CHECK(std::string(reinterpret_cast<char*>(buf.data()), 4) == "ping");

      // The server can still answer the half-closed client.
      REQUIRE(co_await server.write_all(bytes("pong")));
      REQUIRE(co_await server.shutdown_write());
      std::string answer;
      for (;;) {
        auto n = co_await client.read_some(buf);
        REQUIRE(n);
        if (*n == 0) break;
        answer.append(reinterpret_cast<char*>(buf.data()), *n);
      }
      CHECK(answer == "pong");
      auto empty = co_await client.read_some({});
      REQUIRE_FALSE(empty);
      CHECK(empty.error().kind == ErrorKind::InvalidArgument);
    });
  }

  TEST_CASE("close() is abortive: the peer sees a reset and our pending read completes as Cancelled") {
    test::run_fresh([](asio::io_context&) -> awaitable<void> {
      auto sockets = co_await connected_pair();  // no structured bindings: the lambdas below capture them
      auto& client = sockets.first;
      auto& server = sockets.second;
      std::optional<Result<std::size_t>> pending;
      auto reader = [&]() -> awaitable<void> {
        std::array<std::uint8_t, 16> buf{};
        pending = co_await server.read_some(buf);
      };
      auto closer = [&]() -> awaitable<void> {
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);  // reader is waiting now
        server.close();
        server.close();  // idempotent
      };
      co_await (reader() && closer());
      REQUIRE(pending);
      REQUIRE_FALSE(*pending);
      CHECK(pending->error().kind == ErrorKind::Cancelled);
      CHECK_FALSE(server.socket().is_open());

      std::array<std::uint8_t, 16> buf{};
      auto n = co_await client.read_some(buf);
      REQUIRE_FALSE(n);  // RST, not EOF
      CHECK(n.error().code == ECONNRESET);
      CAPTURE(n.error().context);
      CHECK(n.error().context.find("127.0.0.1:") != std::string::npos);
    });
  }

  TEST_CASE("a reset stays an error when another operation already consumed it") {
    test::run_fresh([](asio::io_context&) -> awaitable<void> {
      auto [client, server] = co_await connected_pair();
      server.socket().set_option(asio::socket_base::linger(true, 0));
      server.socket().close();  // RST
      // Writes until the kernel reports the reset to a write (ECONNRESET once, EPIPE after that).
      Result<void> w = ok();
      for (int i = 0; i < 1000 && w; ++i) w = co_await client.write_all(bytes("x"));
      REQUIRE_FALSE(w);
      CAPTURE(w.error().message());
      CHECK((w.error().code == ECONNRESET || w.error().code == EPIPE));
      // recv(2) itself now returns 0; read_some must still not report a clean EOF.
      std::array<std::uint8_t, 16> buf{};
      auto n = co_await client.read_some(buf);
      REQUIRE_FALSE(n);
      CHECK(n.error().code == ECONNRESET);
    });
  }

  TEST_CASE("connect: refused and timeout are told apart") {
    test::run_fresh([](asio::io_context& io) -> awaitable<void> {
      tcp::endpoint closed_port;
      {
        auto acc = net::listen(io.get_executor(), kLoopback);
        REQUIRE(acc);
        closed_port = acc->local_endpoint();
      }  // closed: nothing listens there now
      auto refused = co_await net::connect(closed_port, 5s);
      REQUIRE_FALSE(refused);
      CHECK(refused.error().kind == ErrorKind::ConnectRefused);
      CHECK(refused.error().code == ECONNREFUSED);

      // A listener that never accepts, with backlog 0: once its accept queue holds one connection the
      // kernel drops further SYNs, so a later connect hangs until our timeout.
      auto full = net::listen(io.get_executor(), kLoopback, {.backlog = 0});
      REQUIRE(full);
      std::vector<net::TcpStream> queued;
      std::optional<Error> timeout;
      for (int i = 0; i < 4 && !timeout; ++i) {
        auto c = co_await net::connect(full->local_endpoint(), 300ms);
        if (c) {
          queued.push_back(std::move(*c));
        } else {
          timeout = c.error();
        }
      }
      REQUIRE(timeout);
      CHECK(timeout->kind == ErrorKind::Timeout);
      CHECK(timeout->context.find("300 ms") != std::string::npos);
      CHECK_FALSE(queued.empty());
    });
  }

  TEST_CASE("listen: [::] is dual-stack") {
    test::run_fresh([](asio::io_context& io) -> awaitable<void> {
      auto acc = net::listen(io.get_executor(), {asio::ip::address_v6::any(), 0});
      REQUIRE(acc);
      const tcp::endpoint v4{asio::ip::make_address("127.0.0.1"), acc->local_endpoint().port()};
      auto [c, s] = co_await (net::connect(v4, 5s) && net::accept(*acc));
      REQUIRE(c);
      REQUIRE(s);
      CHECK(s->peer().address().to_v6().is_v4_mapped());
    });
  }
}
