#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include "common/hbone/tunnel.h"
#include "common/tls/ca.h"
#include "common/tls/tls_context.h"
#include "common/tls/tls_stream.h"
#include "test/common/h2/h2_fixture.h"
#include "test/support/paths.h"
#include "test/support/run_coro.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

template <typename T>
T must(Result<T> r) {
  REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
  return std::move(r).value();
}

const tls::SpiffeId kClient{"cluster.local", "client-ns", "client-sa"};
const tls::SpiffeId kServer{"cluster.local", "server-ns", "server-sa"};

// (a function, not a braced list: GCC 12 rejects initializer lists inside co_await expressions)
std::vector<std::string> server_sans() { return std::vector<std::string>(1, kServer.to_string()); }

bool contains(const std::string& s, std::string_view what) { return s.find(what) != std::string::npos; }

// An HBONE listener on 127.0.0.1:0 whose handler echoes every CONNECT stream; records each connection's
// outcome and the peer identities it saw.
struct HboneServer {
  asio::io_context& io;
  bssl::UniquePtr<SSL_CTX> ctx;
  asio::ip::tcp::acceptor acceptor;
  std::vector<Result<void>> outcomes;
  std::vector<std::string> peers;
  hbone::ServeOptions options;

  HboneServer(asio::io_context& io_, const tls::CertifiedKey& key)
      : io(io_), ctx(must(tls::make_server_context(key))),
        acceptor(must(net::listen(io_.get_executor(), {asio::ip::make_address("127.0.0.1"), 0}))) {
    options.h2.ping_interval = 0ms;
    asio::co_spawn(io, accept_loop(), asio::detached);
  }
  asio::ip::tcp::endpoint endpoint() const { return acceptor.local_endpoint(); }
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto c = co_await net::accept(acceptor);
      if (!c) co_return;
      asio::co_spawn(io, [this, c = std::move(*c)]() mutable -> asio::awaitable<void> {
            auto handler = [this](std::shared_ptr<const hbone::PeerInfo> peer, std::shared_ptr<h2::Stream> s) {
              peers.push_back(peer->identity.to_string());
              return echo_handler(std::move(s));
            };
            outcomes.push_back(co_await hbone::serve_connection(std::move(c), ctx.get(), handler, options));
          }, asio::detached);
    }
  }
  void stop() {
    boost::system::error_code ec;
    acceptor.close(ec);
  }
};

hbone::DialOptions quiet_dial() {
  hbone::DialOptions o;
  o.h2.ping_interval = 0ms;
  o.handshake_timeout = 5s;
  return o;
}

struct World {
  tls::CertificateAuthority ca = must(tls::CertificateAuthority::create_self_signed("cluster.local", 24h));
  tls::CertificateAuthority other_ca = must(tls::CertificateAuthority::create_self_signed("cluster.local", 24h));
  tls::CertifiedKey client = must(ca.issue(kClient, 1h));
  tls::CertifiedKey server = must(ca.issue(kServer, 1h));
  tls::CertifiedKey expired(const tls::SpiffeId& id) {
    const auto past = std::chrono::system_clock::now() - 2h;
    ca.set_clock([past] { return past; });
    auto out = must(ca.issue(id, 1h));
    ca.set_clock([] { return std::chrono::system_clock::now(); });
    return out;
  }
  tls::CertifiedKey from_other_ca(const tls::SpiffeId& id) {
    auto out = must(other_ca.issue(id, 1h));
    out.roots = tls::share(ca.roots());
    return out;
  }
};

// Client side of one attempt with a custom SSL tweak: TCP + TlsStream handshake + one byte of traffic,
// so a server-side refusal after the client's Finished becomes visible.
asio::awaitable<Result<void>> raw_client(asio::ip::tcp::endpoint to, SSL_CTX* ctx, std::vector<std::string> sans,
                                         const std::function<void(SSL*)>& tweak) {
  auto tcp = co_await net::connect(to, 5s);
  if (!tcp) co_return tcp.error();
  auto ssl = tls::new_client_ssl(ctx, std::move(sans));
  if (!ssl) co_return ssl.error();
  if (tweak) tweak(ssl->get());
  tls::TlsStream s(std::move(tcp->socket()), std::move(*ssl));
  auto hs = co_await s.handshake(5s);
  if (!hs) co_return hs;
  const std::uint8_t preface[] = {'P', 'R', 'I'};
  (void)co_await s.write_all(preface);
  std::uint8_t buf[64];
  auto n = co_await s.read_some(buf);
  if (!n) co_return n.error();
  if (*n == 0) co_return make_error(ErrorKind::Closed, "closed");
  co_return ok();
}

}  // namespace

TEST_SUITE("common/hbone/tunnel") {
  TEST_CASE("good mTLS over TCP: both identities seen, tunnel echo byte-exact for 0 B .. 64 MiB") {
    World w;
    asio::io_context io(1);
    HboneServer server(io, w.server);
    auto cctx = must(tls::make_client_context(w.client));
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto session = must(co_await hbone::dial(server.endpoint(), cctx.get(), server_sans(), quiet_dial()));
      for (std::size_t size : {std::size_t{0}, std::size_t{1} << 10, std::size_t{1} << 20, std::size_t{64} << 20}) {
        CAPTURE(size);
        auto st = must(co_await session->connect("10.0.2.7:8080", {}, 5s));
        auto data = pattern(size, static_cast<std::uint32_t>(size + 7));
        auto got = must(co_await send_and_receive(*st, data));
        CHECK(got.size() == data.size());
        CHECK((got == data));
        co_await st->finish();  // both END_STREAMs exchanged: the stream closes without RST_STREAM
        CHECK(st->finished());
        CHECK_FALSE(st->was_reset());
      }
      session->shutdown();
    }());
    REQUIRE(server.peers.size() == 4);
    CHECK(server.peers[0] == kClient.to_string());
    server.stop();
  }

  TEST_CASE("100 concurrent tunnels over one mTLS connection") {
    World w;
    asio::io_context io(1);
    HboneServer server(io, w.server);
    auto cctx = must(tls::make_client_context(w.client));
    int good = 0;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto session = must(co_await hbone::dial(server.endpoint(), cctx.get(), server_sans(), quiet_dial()));
      int remaining = 100;
      asio::steady_timer done(io, asio::steady_timer::time_point::max());
      for (int i = 0; i < 100; ++i) {
        asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
              auto st = co_await session->connect(fmt::format("10.0.2.{}:80", i), {}, 5s);
              if (st) {
                auto data = pattern(50'000 + static_cast<std::size_t>(i) * 997, static_cast<std::uint32_t>(i));
                auto got = co_await send_and_receive(**st, data, 4096);
                if (got && *got == data) ++good;
              }
              if (--remaining == 0) done.cancel();
            }, asio::detached);
      }
      co_await done.async_wait(asio::as_tuple(asio::use_awaitable));
      session->shutdown();
    }());
    CHECK(good == 100);
    CHECK(server.peers.size() == 100);
    server.stop();
  }

  TEST_CASE("handshake refusals name the peer and the failed check, on both sides") {
    World w;
    struct Row {
      std::string name;
      tls::CertifiedKey client, server;
      std::vector<std::string> expected;
      std::function<void(SSL*)> tweak;
      bool client_refuses;
      std::string reason;  // on the refusing side
      ErrorKind kind = ErrorKind::TlsHandshake;
      bool client_allows_tls12 = false;  // so the client can offer TLS 1.2 at all
    };
    const std::string s_uri = kServer.to_string();
    std::vector<Row> rows;
    rows.push_back({"server from another CA", w.client.share(), must(w.other_ca.issue(kServer, 1h)), {s_uri}, {}, true,
                    "certificate chain: unable to get local issuer certificate"});
    rows.push_back({"client from another CA", w.from_other_ca(kClient), w.server.share(), {s_uri}, {}, false,
                    "certificate chain: unable to get local issuer certificate"});
    rows.push_back({"expired server certificate", w.client.share(), w.expired(kServer), {s_uri}, {}, true,
                    "certificate has expired"});
    rows.push_back({"expired client certificate", w.expired(kClient), w.server.share(), {s_uri}, {}, false,
                    "certificate has expired"});
    rows.push_back({"wrong server SAN", w.client.share(), w.server.share(), {"spiffe://cluster.local/ns/x/sa/y"}, {},
                    true, "is not one of the expected [spiffe://cluster.local/ns/x/sa/y]", ErrorKind::PeerIdentity});
    rows.push_back({"no client certificate", w.client.share(), w.server.share(), {s_uri},
                    [](SSL* ssl) { SSL_certs_clear(ssl); }, false, "no client certificate"});
    rows.push_back({"client offers only TLS 1.2", w.client.share(), w.server.share(), {s_uri},
                    [](SSL* ssl) { SSL_set_max_proto_version(ssl, TLS1_2_VERSION); }, false, "TLS version",
                    ErrorKind::TlsHandshake, true});
    rows.push_back({"client offers no ALPN", w.client.share(), w.server.share(), {s_uri},
                    [](SSL* ssl) { SSL_set_alpn_protos(ssl, nullptr, 0); }, false, "ALPN: client offered no protocols"});
    rows.push_back({"client in another trust domain", must(w.ca.issue({"evil.org", "a", "b"}, 1h)), w.server.share(),
                    {s_uri}, {}, false, "trust domain evil.org != cluster.local", ErrorKind::PeerIdentity});
    for (auto& row : rows) {
      CAPTURE(row.name);
      asio::io_context io(1);
      HboneServer server(io, row.server);
      auto cctx = must(tls::make_client_context(row.client, tls::TlsOptions{.allow_tls12 = row.client_allows_tls12}));
      auto client = run_coro(io, raw_client(server.endpoint(), cctx.get(), row.expected, row.tweak));
      // Let the server finish its side.
      for (int i = 0; i < 100 && server.outcomes.empty(); ++i) io.run_for(10ms);
      REQUIRE_FALSE(client.has_value());
      REQUIRE(server.outcomes.size() == 1);
      const auto& srv = server.outcomes[0];
      REQUIRE_FALSE(srv.has_value());
      const Error& refusal = row.client_refuses ? client.error() : srv.error();
      INFO(refusal.message());
      CHECK(contains(refusal.context, row.reason));
      CHECK(refusal.kind == row.kind);
      // The refusing side names its peer's address.
      const std::string peer = row.client_refuses ? fmt::format("127.0.0.1:{}", server.endpoint().port()) : "127.0.0.1:";
      CHECK(contains(refusal.context, peer));
      server.stop();
    }
  }

  TEST_CASE("malformed HTTP/2 inside mTLS: GOAWAY, connection closed, server survives") {
    World w;
    asio::io_context io(1);
    HboneServer server(io, w.server);
    auto cctx = must(tls::make_client_context(w.client));
    std::vector<std::uint8_t> reply;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto tcp = must(co_await net::connect(server.endpoint(), 5s));
      tls::TlsStream s(std::move(tcp.socket()), must(tls::new_client_ssl(cctx.get(), server_sans())));
      must(co_await s.handshake(5s));
      std::string bad = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
                        std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9) +       // SETTINGS
                        std::string("\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00", 13);  // WINDOW_UPDATE of 0 on stream 0
      must(co_await s.write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bad.data()), bad.size())));
      std::vector<std::uint8_t> buf(4096);
      for (;;) {
        auto n = co_await s.read_some(buf);
        if (!n || *n == 0) break;
        reply.insert(reply.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
      }
      // The listener still serves a good client afterwards.
      auto session = must(co_await hbone::dial(server.endpoint(), cctx.get(), server_sans(), quiet_dial()));
      auto st = must(co_await session->connect("10.0.0.1:1", {}, 5s));
      auto got = must(co_await send_and_receive(*st, pattern(1000)));
      CHECK(got.size() == 1000);
      session->shutdown();
    }());
    bool goaway = false;
    for (std::size_t off = 0; off + 9 <= reply.size();) {
      const std::size_t len = (std::size_t{reply[off]} << 16) | (std::size_t{reply[off + 1]} << 8) | reply[off + 2];
      if (reply[off + 3] == 0x7 && off + 17 <= reply.size()) {
        goaway = true;
        CHECK(reply[off + 9 + 7] == 0x1);  // PROTOCOL_ERROR
      }
      off += 9 + len;
    }
    CHECK(goaway);
    REQUIRE(!server.outcomes.empty());
    REQUIRE_FALSE(server.outcomes[0].has_value());
    CHECK(server.outcomes[0].error().kind == ErrorKind::H2Protocol);
    server.stop();
  }
}
