#include <doctest/doctest.h>

#include <csignal>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>

#include "common/net/tcp_stream.h"
#include "common/tls/ca.h"
#include "common/tls/tls_context.h"
#include "common/tls/tls_stream.h"
#include "test/common/tls/test_pki.h"
#include "test/support/run_coro.h"

using namespace ambient;
using namespace std::chrono_literals;
using tls::testing::must;
namespace asio = boost::asio;

namespace {

const tls::SpiffeId kClient{"cluster.local", "a", "client"};
const tls::SpiffeId kServer{"cluster.local", "b", "server"};

// SIGPIPE back at its default action (terminate) for one test: whatever another test of this binary set.
struct DefaultSigpipe {
  void (*previous)(int) = std::signal(SIGPIPE, SIG_DFL);
  ~DefaultSigpipe() { std::signal(SIGPIPE, previous); }
};

struct Pair {
  std::optional<tls::TlsStream> client, server;
};

asio::awaitable<Result<Pair>> handshaken_pair(SSL_CTX* client_ctx, SSL_CTX* server_ctx) {
  using namespace asio::experimental::awaitable_operators;
  auto ex = co_await asio::this_coro::executor;
  auto acceptor = net::listen(ex, {asio::ip::make_address("127.0.0.1"), 0});
  if (!acceptor) co_return acceptor.error();
  auto [accepted, connected] =
      co_await (net::accept(*acceptor) && net::connect(acceptor->local_endpoint(), 5s));
  if (!accepted) co_return accepted.error();
  if (!connected) co_return connected.error();
  auto client_ssl = tls::new_client_ssl(client_ctx, std::vector<std::string>(1, kServer.to_string()));
  auto server_ssl = tls::new_server_ssl(server_ctx);
  if (!client_ssl) co_return client_ssl.error();
  if (!server_ssl) co_return server_ssl.error();
  Pair p;
  p.client.emplace(std::move(connected->socket()), std::move(*client_ssl));
  p.server.emplace(std::move(accepted->socket()), std::move(*server_ssl));
  auto [c, s] = co_await (p.client->handshake(5s) && p.server->handshake(5s));
  if (!c) co_return c.error();
  if (!s) co_return s.error();
  co_return p;
}

}  // namespace

TEST_SUITE("common/tls/tls_stream") {
  // BoringSSL's fd BIO writes with write(2): on a connection that is gone that raises SIGPIPE, and its default
  // action ends the process (a ztunnel serving thousands of connections). The stream's own write BIO must
  // turn it into an error.
  TEST_CASE("a write after the connection is gone is a Closed error, not a SIGPIPE that kills the process") {
    DefaultSigpipe sigpipe;
    auto ca = must(tls::CertificateAuthority::create_self_signed("cluster.local", 24h));
    auto client_ctx = must(tls::make_client_context(must(ca.issue(kClient, 1h))));
    auto server_ctx = must(tls::make_server_context(must(ca.issue(kServer, 1h))));
    asio::io_context io;
    auto pair = must(test::run_coro(io, handshaken_pair(client_ctx.get(), server_ctx.get())));

    // Round trip first: the BIOs carry data both ways.
    const std::vector<std::uint8_t> hello(3000, 0x5a);
    REQUIRE(test::run_coro(io, pair.client->write_all(hello)).has_value());
    std::vector<std::uint8_t> got(hello.size());
    std::size_t have = 0;
    while (have < got.size()) {
      auto n = test::run_coro(io, pair.server->read_some(std::span(got).subspan(have)));
      REQUIRE(n.has_value());
      REQUIRE(*n > 0);
      have += *n;
    }
    CHECK(got == hello);

    // Our own write half shut: the kernel answers send() with EPIPE (and SIGPIPE unless MSG_NOSIGNAL).
    REQUIRE(test::run_coro(io, pair.client->shutdown_write()).has_value());
    auto w = test::run_coro(io, pair.client->write_all(hello));
    REQUIRE_FALSE(w.has_value());
    CHECK(w.error().kind == ErrorKind::Closed);
    CHECK(w.error().message().find("TLS write to 127.0.0.1:") != std::string::npos);

    // The peer closed: the kernel takes the first writes, the peer answers with a reset, and a later write
    // fails (ECONNRESET, then EPIPE) instead of signalling.
    auto other = must(test::run_coro(io, handshaken_pair(client_ctx.get(), server_ctx.get())));
    other.server->close();
    Result<void> later = ok();
    for (int i = 0; i < 100 && later.has_value(); ++i) later = test::run_coro(io, other.client->write_all(hello));
    REQUIRE_FALSE(later.has_value());
    CHECK(later.error().kind == ErrorKind::Closed);
  }
}
