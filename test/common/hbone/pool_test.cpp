#include <doctest/doctest.h>

#include <algorithm>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/hbone/pool.h"
#include "common/hbone/tunnel.h"
#include "common/tls/ca.h"
#include "common/tls/pki.h"
#include "common/tls/tls_context.h"
#include "test/common/h2/h2_fixture.h"
#include "test/common/hbone/hbone_echo_server.h"
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

const tls::SpiffeId kClientA{"cluster.local", "ns-a", "sa-a"};
const tls::SpiffeId kClientB{"cluster.local", "ns-b", "sa-b"};
const tls::SpiffeId kServer{"cluster.local", "server-ns", "server-sa"};
const h2::Headers kNoHeaders;

// One CA, two client identities and a server identity; the connector the way production builds it
// (hbone::dial with the SSL_CTX of the key's source identity), counting its calls.
struct World {
  tls::CertificateAuthority ca = must(tls::CertificateAuthority::create_self_signed("cluster.local", 24h));
  tls::CertifiedKey client_a = must(ca.issue(kClientA, 1h));
  tls::CertifiedKey client_b = must(ca.issue(kClientB, 1h));
  tls::CertifiedKey server = must(ca.issue(kServer, 1h));
  bssl::UniquePtr<SSL_CTX> ctx_a = must(tls::make_client_context(client_a));
  bssl::UniquePtr<SSL_CTX> ctx_b = must(tls::make_client_context(client_b));
  int dials = 0;

  hbone::Connector connector() {
    return [this](const hbone::PoolKey& key) -> asio::awaitable<Result<std::shared_ptr<h2::Session>>> {
      ++dials;
      SSL_CTX* ctx = key.source_identity == kClientB.to_string() ? ctx_b.get() : ctx_a.get();
      hbone::DialOptions o;
      o.connect_timeout = 5s;
      o.handshake_timeout = 5s;
      o.h2.ping_interval = 0ms;
      co_return co_await hbone::dial(key.destination, ctx, key.destination_sans, o);
    };
  }
};

hbone::PoolKey key_to(const asio::ip::tcp::endpoint& to, const tls::SpiffeId& source = kClientA) {
  hbone::PoolKey k;
  k.source_identity = source.to_string();
  k.destination_sans.push_back(kServer.to_string());
  k.destination = to;
  k.source_ip = asio::ip::make_address("127.0.0.1");
  return k;
}

// A latch many test coroutines can wait on (cancel() wakes every waiter of a timer).
class Gate {
 public:
  explicit Gate(asio::io_context& io) : t_(io, asio::steady_timer::time_point::max()) {}
  void open() {
    open_ = true;
    t_.cancel();
  }
  asio::awaitable<void> wait() {
    while (!open_) co_await t_.async_wait(asio::as_tuple(asio::use_awaitable));
  }

 private:
  asio::steady_timer t_;
  bool open_ = false;
};

// Runs a test body with a watchdog, so a pool bug fails the test instead of hanging it.
asio::awaitable<void> within(asio::awaitable<void> body, std::chrono::seconds limit) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer t(co_await asio::this_coro::executor, limit);
  auto r = co_await (std::move(body) || t.async_wait(asio::as_tuple(asio::use_awaitable)));
  CHECK_MESSAGE(r.index() == 0, "test body did not finish within the watchdog");
}

// Writes `data` in 4 KiB chunks and half-closes while reading everything back to EOF (8 KiB reads: the
// big bursts run 1000 of these at once).
asio::awaitable<Result<std::vector<std::uint8_t>>> roundtrip(h2::Stream& s, const std::vector<std::uint8_t>& data) {
  using namespace asio::experimental::awaitable_operators;
  Result<void> wr = ok(), rd = ok();
  std::vector<std::uint8_t> got;
  auto writer = [&]() -> asio::awaitable<void> {
    for (std::size_t off = 0; off < data.size(); off += 4096) {
      const std::size_t n = std::min<std::size_t>(4096, data.size() - off);
      auto r = co_await s.write_all(std::span<const std::uint8_t>(data.data() + off, n));
      if (!r) {
        wr = r;
        co_return;
      }
    }
    wr = co_await s.shutdown_write();
  };
  auto reader = [&]() -> asio::awaitable<void> {
    std::vector<std::uint8_t> buf(8 << 10);
    for (;;) {
      auto n = co_await s.read_some(buf);
      if (!n) {
        rd = n.error();
        co_return;
      }
      if (*n == 0) co_return;
      got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    }
  };
  co_await (writer() && reader());
  if (!wr) co_return wr.error();
  if (!rd) co_return rd.error();
  co_return got;
}

// One echo exchange on a tunnel that stays open.
asio::awaitable<Result<void>> echo_once(h2::Stream& s, std::size_t n, std::uint32_t seed) {
  const auto data = pattern(n, seed);
  auto w = co_await s.write_all(data);
  if (!w) co_return w;
  std::vector<std::uint8_t> got(n);
  for (std::size_t off = 0; off < n;) {
    auto r = co_await s.read_some(std::span<std::uint8_t>(got).subspan(off));
    if (!r) co_return r.error();
    if (*r == 0) co_return make_error(ErrorKind::Closed, "EOF in the middle of an echo");
    off += *r;
  }
  if (got != data) co_return make_error(ErrorKind::Internal, "echo differs");
  co_return ok();
}

struct Burst {
  Burst(int count, std::size_t echo_bytes) : n(count), bytes(echo_bytes) {}
  int n = 0;
  std::size_t bytes = 0;                 // echoed per tunnel once all are open
  int good = 0;                          // tunnels opened and echoed byte-exact
  std::vector<std::string> errors;
  std::size_t connections_when_open = 0;  // pool.connection_count() once all n had their answer
};

// Opens b.n tunnels at once, one coroutine each. Each keeps its tunnel open until all n have been
// answered, so all n are concurrent. Then each echoes b.bytes of its own pattern and ends its tunnel.
asio::awaitable<void> run_burst(asio::io_context& io, hbone::Pool& pool, hbone::PoolKey key, Burst& b) {
  int answered = 0, finished = 0;
  Gate all_open(io), all_done(io);
  for (int i = 0; i < b.n; ++i) {
    asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
          auto st = co_await pool.connect(key, fmt::format("10.0.{}.{}:80", i / 250, i % 250), kNoHeaders, 20s);
          if (++answered == b.n) {
            b.connections_when_open = pool.connection_count();
            all_open.open();
          }
          co_await all_open.wait();
          if (!st) {
            b.errors.push_back(st.error().message());
          } else {
            const auto data = pattern(b.bytes, static_cast<std::uint32_t>(i + 1));
            auto got = co_await roundtrip(**st, data);
            if (!got)
              b.errors.push_back(got.error().message());
            else if (*got != data)
              b.errors.push_back(fmt::format("tunnel {}: echo differs ({} of {} bytes)", i, got->size(), data.size()));
            else
              ++b.good;
          }
          if (++finished == b.n) all_done.open();
        }, asio::detached);
  }
  co_await all_done.wait();
}

std::string first_error(const Burst& b) { return b.errors.empty() ? std::string() : b.errors.front(); }

}  // namespace

TEST_SUITE("common/hbone/pool") {
  TEST_CASE("PoolKey: all four fields separate keys; SAN order does not") {
    hbone::PoolKey a;
    a.source_identity = "spiffe://cluster.local/ns/a/sa/a";
    a.destination_sans = {"spiffe://cluster.local/ns/b/sa/b", "spiffe://cluster.local/ns/b/sa/c"};
    a.destination = {asio::ip::make_address("10.0.0.1"), hbone::kHbonePort};
    a.source_ip = asio::ip::make_address("10.0.0.9");
    const hbone::PoolKeyHash hash;
    const auto b = a;
    CHECK(a == b);
    CHECK(hash(a) == hash(b));

    std::vector<std::pair<std::string, hbone::PoolKey>> others;
    others.emplace_back("source identity", a);
    others.back().second.source_identity = "spiffe://cluster.local/ns/a/sa/other";
    others.emplace_back("destination SANs", a);
    others.back().second.destination_sans.pop_back();
    others.emplace_back("destination port", a);
    others.back().second.destination.port(15009);
    others.emplace_back("destination ip", a);
    others.back().second.destination.address(asio::ip::make_address("10.0.0.2"));
    others.emplace_back("source ip", a);
    others.back().second.source_ip = asio::ip::make_address("10.0.0.10");
    for (const auto& other : others) {
      const std::string& name = other.first;  // no structured bindings: CAPTURE is a lambda (clang 14)
      const hbone::PoolKey& k = other.second;
      CAPTURE(name);
      CHECK_FALSE(k == a);
      CHECK(hash(k) != hash(a));  // not required by the contract, but a weak hash would show here
    }

    // Unsorted SANs in a request land on the sorted key.
    World w;
    asio::io_context io(1);
    HboneEchoServer server(io, w.server);
    hbone::Pool pool(io.get_executor(), w.connector());
    auto key = key_to(server.endpoint());
    key.destination_sans = {"spiffe://z.example/ns/x/sa/y", kServer.to_string(), kServer.to_string()};
    run_coro(io, within([&]() -> asio::awaitable<void> {
      auto st = must(co_await pool.connect(key, "10.0.0.1:80", kNoHeaders, 5s));
      must(co_await roundtrip(*st, pattern(10)));
    }(), 30s));
    auto sorted = key;
    std::sort(sorted.destination_sans.begin(), sorted.destination_sans.end());
    sorted.destination_sans.erase(std::unique(sorted.destination_sans.begin(), sorted.destination_sans.end()),
                                  sorted.destination_sans.end());
    CHECK(pool.connection_count(sorted) == 1);
    CHECK(pool.connection_count(key) == 1);
  }

  TEST_CASE("reuse: 10 sequential tunnels share one connection") {
    World w;
    asio::io_context io(1);
    HboneEchoServer server(io, w.server);
    hbone::Pool pool(io.get_executor(), w.connector());
    const auto key = key_to(server.endpoint());
    int good = 0;
    run_coro(io, within([&]() -> asio::awaitable<void> {
      for (int i = 0; i < 10; ++i) {
        auto st = must(co_await pool.connect(key, "10.0.2.7:8080", kNoHeaders, 5s));
        const auto data = pattern(3000, static_cast<std::uint32_t>(i + 1));
        auto got = must(co_await roundtrip(*st, data));
        if (got == data) ++good;
      }
    }(), 30s));
    CHECK(good == 10);
    CHECK(w.dials == 1);
    CHECK(server.accepted() == 1);
    CHECK(server.streams() == 10);
    CHECK(pool.connection_count() == 1);
    CHECK(pool.connection_count(key) == 1);
    const auto s = pool.stats();
    CHECK(s.connects_attempted == 1);
    CHECK(s.connects_failed == 0);
    CHECK(s.streams_opened == 10);
    CHECK(s.streams_reused == 9);
    CHECK(s.connections == 1);
  }

  TEST_CASE("limit: a connection carries at most max_streams_per_connection, then the pool opens another") {
    World w;
    asio::io_context io(1);
    HboneEchoServer server(io, w.server);
    hbone::Pool pool(io.get_executor(), w.connector(), hbone::PoolOptions{.max_streams_per_connection = 100});
    const auto key = key_to(server.endpoint());

    SUBCASE("250 concurrent tunnels -> 3 connections") {
      Burst b(250, 100);
      run_coro(io, within(run_burst(io, pool, key, b), 60s));
      CHECK_MESSAGE(b.errors.empty(), first_error(b));
      CHECK(b.good == 250);
      CHECK(b.connections_when_open == 3);
      CHECK(w.dials == 3);
      CHECK(server.accepted() == 3);
    }
    SUBCASE("1000 concurrent tunnels echoing 4 KiB each -> 10 connections, every byte right") {
      Burst b(1000, 4096 + 123);
      run_coro(io, within(run_burst(io, pool, key, b), 120s));
      CHECK_MESSAGE(b.errors.empty(), first_error(b));
      CHECK(b.good == 1000);
      CHECK(b.connections_when_open == 10);
      CHECK(w.dials == 10);
      CHECK(server.accepted() == 10);
      CHECK(server.streams() == 1000);
      CHECK(pool.stats().streams_opened == 1000);
    }
  }

  TEST_CASE("per-key isolation: another source identity or destination gets its own connection") {
    World w;
    asio::io_context io(1);
    HboneEchoServer server(io, w.server);
    hbone::Pool pool(io.get_executor(), w.connector());

    SUBCASE("two source identities to one destination") {
      const auto key_a = key_to(server.endpoint(), kClientA);
      const auto key_b = key_to(server.endpoint(), kClientB);
      run_coro(io, within([&]() -> asio::awaitable<void> {
        auto a = must(co_await pool.connect(key_a, "10.0.0.1:80", kNoHeaders, 5s));
        auto b = must(co_await pool.connect(key_b, "10.0.0.1:80", kNoHeaders, 5s));
        must(co_await echo_once(*a, 500, 1));
        must(co_await echo_once(*b, 500, 2));
        CHECK(pool.connection_count() == 2);
        CHECK(pool.connection_count(key_a) == 1);
        CHECK(pool.connection_count(key_b) == 1);
        // Another tunnel of A rides A's connection.
        auto a2 = must(co_await pool.connect(key_a, "10.0.0.2:80", kNoHeaders, 5s));
        must(co_await roundtrip(*a2, pattern(100)));
        must(co_await roundtrip(*a, pattern(10)));
        must(co_await roundtrip(*b, pattern(10)));
      }(), 30s));
      CHECK(w.dials == 2);
      CHECK(server.accepted() == 2);
      REQUIRE(server.peers().size() == 3);
      CHECK(server.peers()[0] == kClientA.to_string());
      CHECK(server.peers()[1] == kClientB.to_string());
      CHECK(server.peers()[2] == kClientA.to_string());
    }
    SUBCASE("one source identity to two destinations") {
      HboneEchoServer other(io, w.server);
      const auto key_1 = key_to(server.endpoint());
      const auto key_2 = key_to(other.endpoint());
      run_coro(io, within([&]() -> asio::awaitable<void> {
        for (int i = 0; i < 3; ++i) {
          auto s1 = must(co_await pool.connect(key_1, "10.0.0.1:80", kNoHeaders, 5s));
          auto s2 = must(co_await pool.connect(key_2, "10.0.0.2:80", kNoHeaders, 5s));
          must(co_await roundtrip(*s1, pattern(100)));
          must(co_await roundtrip(*s2, pattern(100)));
        }
      }(), 30s));
      CHECK(w.dials == 2);
      CHECK(server.accepted() == 1);
      CHECK(other.accepted() == 1);
      CHECK(server.streams() == 3);
      CHECK(other.streams() == 3);
      CHECK(pool.connection_count() == 2);
    }
  }

  TEST_CASE("single flight: 50 concurrent first requests for one key make one connect") {
    World w;
    asio::io_context io(1);
    HboneEchoServer server(io, w.server);
    hbone::Pool pool(io.get_executor(), w.connector());
    Burst b(50, 1000);
    run_coro(io, within(run_burst(io, pool, key_to(server.endpoint()), b), 30s));
    CHECK_MESSAGE(b.errors.empty(), first_error(b));
    CHECK(b.good == 50);
    CHECK(w.dials == 1);
    CHECK(server.accepted() == 1);
    CHECK(b.connections_when_open == 1);
  }

  TEST_CASE("connect failure: every waiter gets the error, nothing is cached, the next request succeeds") {
    World w;
    asio::io_context io(1);
    HboneEchoServer server(io, w.server, HboneEchoServer::default_settings(), /*listen=*/false);
    hbone::Pool pool(io.get_executor(), w.connector());
    const auto key = key_to(server.endpoint());
    std::vector<Error> errors;
    int succeeded = 0;
    run_coro(io, within([&]() -> asio::awaitable<void> {
      Gate done(io);
      int answered = 0;
      for (int i = 0; i < 50; ++i) {
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
              auto st = co_await pool.connect(key, "10.0.0.1:80", kNoHeaders, 5s);
              if (st)
                ++succeeded;
              else
                errors.push_back(st.error());
              if (++answered == 50) done.open();
            }, asio::detached);
      }
      co_await done.wait();
    }(), 30s));
    CHECK(succeeded == 0);
    REQUIRE(errors.size() == 50);
    for (const auto& e : errors) CHECK(e.kind == ErrorKind::ConnectRefused);
    INFO(errors[0].message());
    CHECK(errors[0].context.find(std::to_string(server.endpoint().port())) != std::string::npos);
    CHECK(w.dials == 1);
    CHECK(pool.connection_count() == 0);
    CHECK(pool.stats().connects_failed == 1);

    server.start();
    run_coro(io, within([&]() -> asio::awaitable<void> {
      auto st = must(co_await pool.connect(key, "10.0.0.1:80", kNoHeaders, 5s));
      must(co_await roundtrip(*st, pattern(1000)));
    }(), 30s));
    CHECK(w.dials == 2);
    CHECK(server.accepted() == 1);
    CHECK(pool.connection_count() == 1);
  }

  TEST_CASE("server GOAWAY: the draining connection is skipped, the next request opens a new one") {
    World w;
    asio::io_context io(1);
    HboneEchoServer server(io, w.server);
    hbone::Pool pool(io.get_executor(), w.connector());
    const auto key = key_to(server.endpoint());
    run_coro(io, within([&]() -> asio::awaitable<void> {
      auto first = must(co_await pool.connect(key, "10.0.0.1:80", kNoHeaders, 5s));
      must(co_await echo_once(*first, 1000, 1));
      server.goaway_all();
      // The server queued GOAWAY before this echo's answer, so once it is back the client has seen GOAWAY.
      must(co_await echo_once(*first, 1000, 2));
      CHECK(pool.connection_count(key) == 0);

      auto second = must(co_await pool.connect(key, "10.0.0.1:80", kNoHeaders, 5s));
      CHECK(w.dials == 2);
      CHECK(server.accepted() == 2);
      CHECK(pool.connection_count(key) == 1);
      must(co_await roundtrip(*second, pattern(5000)));
      // The tunnel on the drained connection still finishes, then that connection closes.
      must(co_await roundtrip(*first, pattern(5000, 3)));
      CHECK(co_await server.wait_for([&] { return server.ended() == 1; }, 5s));
    }(), 30s));
    CHECK(pool.connection_count() == 1);
  }

  TEST_CASE("expired credentials: the connection takes no new tunnel and drains; its open tunnel finishes") {
    World w;
    w.client_a = must(w.ca.issue(kClientA, 2s));  // this connection's client certificate runs out first
    w.ctx_a = must(tls::make_client_context(w.client_a));
    const auto expiry = must(tls::not_after(w.client_a.chain.front().get()));
    asio::io_context io(1);
    HboneEchoServer server(io, w.server);
    hbone::Pool pool(io.get_executor(), w.connector());
    const auto key = key_to(server.endpoint());
    run_coro(io, within([&]() -> asio::awaitable<void> {
      auto first = must(co_await pool.connect(key, "10.0.0.1:80", kNoHeaders, 5s));
      must(co_await echo_once(*first, 1000, 1));
      CHECK(pool.connection_count(key) == 1);
      asio::steady_timer t(io, expiry - std::chrono::system_clock::now() + 100ms);
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      // Renewed meanwhile (as the identity manager does): new handshakes use the new certificate.
      w.client_a = must(w.ca.issue(kClientA, 1h));
      w.ctx_a = must(tls::make_client_context(w.client_a));
      auto second = must(co_await pool.connect(key, "10.0.0.1:80", kNoHeaders, 5s));
      CHECK(w.dials == 2);  // not the expired connection
      CHECK(server.accepted() == 2);
      CHECK(pool.connection_count(key) == 1);
      CHECK(pool.stats().draining == 1);
      must(co_await roundtrip(*second, pattern(5000)));
      must(co_await roundtrip(*first, pattern(5000, 3)));  // the open tunnel on the old connection finishes
      CHECK(co_await server.wait_for([&] { return server.ended() == 1; }, 5s));  // ...then that connection closes
    }(), 30s));
  }

  TEST_CASE("idle release: unused connections close after unused_release_timeout, busy ones stay") {
    World w;
    asio::io_context io(1);
    HboneEchoServer server(io, w.server);
    hbone::Pool pool(io.get_executor(), w.connector(), hbone::PoolOptions{.unused_release_timeout = 200ms});
    const auto key = key_to(server.endpoint());
    run_coro(io, within([&]() -> asio::awaitable<void> {
      {
        auto a = must(co_await pool.connect(key, "10.0.0.1:80", kNoHeaders, 5s));
        auto b = must(co_await pool.connect(key, "10.0.0.2:80", kNoHeaders, 5s));
        must(co_await roundtrip(*a, pattern(1000)));
        must(co_await roundtrip(*b, pattern(1000)));
      }
      const auto idle_from = std::chrono::steady_clock::now();
      CHECK(pool.connection_count() == 1);
      CHECK(co_await server.wait_for([&] { return server.ended() == 1; }, 5s));
      const auto idle_for = std::chrono::steady_clock::now() - idle_from;
      CHECK(idle_for >= 190ms);  // the sweep samples idleness, never earlier than the timeout
      CHECK(idle_for < 2s);
      CHECK(pool.connection_count() == 0);
      REQUIRE(server.outcomes().size() == 1);
      const auto& outcome = server.outcomes()[0];
      CHECK_MESSAGE(outcome.has_value(), (outcome ? "" : outcome.error().message()));
      const auto s = pool.stats();
      CHECK(s.idle_released == 1);
      CHECK(s.draining == 0);

      // A connection with an open tunnel is never released, however long it is quiet.
      auto busy = must(co_await pool.connect(key, "10.0.0.3:80", kNoHeaders, 5s));
      CHECK(w.dials == 2);
      co_await sleep_for(700ms);
      CHECK(server.ended() == 1);
      CHECK(pool.connection_count() == 1);
      must(co_await roundtrip(*busy, pattern(2000)));
      CHECK(co_await server.wait_for([&] { return server.ended() == 2; }, 5s));
      CHECK(pool.connection_count() == 0);
    }(), 30s));
    CHECK(pool.stats().idle_released == 2);
  }

  TEST_CASE("peer MAX_CONCURRENT_STREAMS below our limit is respected") {
    World w;
    asio::io_context io(1);
    auto settings = HboneEchoServer::default_settings();
    settings.max_concurrent_streams = 10;
    HboneEchoServer server(io, w.server, settings);
    hbone::Pool pool(io.get_executor(), w.connector());
    Burst b(25, 1000);
    run_coro(io, within(run_burst(io, pool, key_to(server.endpoint()), b), 30s));
    CHECK_MESSAGE(b.errors.empty(), first_error(b));  // no REFUSED_STREAM: we never overran the peer
    CHECK(b.good == 25);
    CHECK(b.connections_when_open == 3);
    CHECK(w.dials == 3);
    CHECK(server.accepted() == 3);
  }

  TEST_CASE("a non-200 answer or a reset tunnel leaves the connection pooled") {
    World w;
    asio::io_context io(1);
    HboneEchoServer server(io, w.server);
    hbone::Pool pool(io.get_executor(), w.connector());
    const auto key = key_to(server.endpoint());
    run_coro(io, within([&]() -> asio::awaitable<void> {
      auto refused = co_await pool.connect(key, "10.0.0.1:503", kNoHeaders, 5s);
      REQUIRE_FALSE(refused.has_value());
      CHECK(refused.error().kind == ErrorKind::HttpStatus);
      CHECK(refused.error().code == 503);
      CHECK(pool.connection_count(key) == 1);

      auto reset = must(co_await pool.connect(key, "10.0.0.1:80", kNoHeaders, 5s));
      must(co_await echo_once(*reset, 1000, 1));
      reset->close();  // RST_STREAM(CANCEL) mid-tunnel

      auto st = must(co_await pool.connect(key, "10.0.0.1:80", kNoHeaders, 5s));
      must(co_await roundtrip(*st, pattern(3000)));
    }(), 30s));
    CHECK(w.dials == 1);
    CHECK(server.accepted() == 1);
    CHECK(pool.connection_count(key) == 1);
  }

  TEST_CASE("shutdown: pooled connections drain, open tunnels finish, new and waiting requests are cancelled") {
    World w;
    asio::io_context io(1);
    HboneEchoServer server(io, w.server);
    // A peer that accepts TCP but never answers the TLS handshake: a connect to it stays in flight.
    auto silent = must(net::listen(io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0}));
    hbone::Pool pool(io.get_executor(), w.connector());
    const auto key = key_to(server.endpoint());
    run_coro(io, within([&]() -> asio::awaitable<void> {
      auto open = must(co_await pool.connect(key, "10.0.0.1:80", kNoHeaders, 5s));
      must(co_await echo_once(*open, 1000, 1));

      std::optional<Result<std::shared_ptr<h2::Stream>>> waiting;
      Gate answered(io);
      asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            waiting.emplace(co_await pool.connect(key_to(silent.local_endpoint()), "10.0.0.9:80", kNoHeaders, 5s));
            answered.open();
          }, asio::detached);
      co_await asio::post(io, asio::use_awaitable);  // the waiter runs: it starts the key's connect and waits
      CHECK_FALSE(waiting.has_value());

      pool.shutdown();
      co_await answered.wait();
      REQUIRE(waiting.has_value());
      REQUIRE_FALSE(waiting->has_value());
      CHECK(waiting->error().kind == ErrorKind::Cancelled);

      auto later = co_await pool.connect(key, "10.0.0.1:80", kNoHeaders, 5s);
      REQUIRE_FALSE(later.has_value());
      CHECK(later.error().kind == ErrorKind::Cancelled);
      CHECK(pool.connection_count() == 0);

      must(co_await echo_once(*open, 1000, 2));
      must(co_await roundtrip(*open, pattern(1000)));
      CHECK(co_await server.wait_for([&] { return server.ended() == 1; }, 5s));
    }(), 30s));
    CHECK(w.dials == 2);
    CHECK(server.accepted() == 1);
  }
}
