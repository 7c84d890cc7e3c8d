#include <doctest/doctest.h>

#include <array>
#include <cerrno>
#include <functional>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/base/log.h"
#include "common/net/tcp_stream.h"
#include "test/common/h2/h2_fixture.h"  // pattern()
#include "test/support/h2_frames.h"
#include "test/support/hbone_attack.h"
#include "test/support/paths.h"
#include "test/support/run_coro.h"
#include "test/ztunnel/support/mesh_clients.h"
#include "test/ztunnel/support/ztunnel_pair.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::string mesh_yaml(std::uint16_t echo_port) {
  return fmt::format(R"(
workloads:
- uid: Kubernetes//Pod/demo/client
  name: client
  namespace: demo
  serviceAccount: client
  workloadIps: ["127.0.0.2"]
  protocol: HBONE
  canonicalName: client
  canonicalRevision: v1
- uid: Kubernetes//Pod/demo/server
  name: server
  namespace: demo
  serviceAccount: server
  workloadIps: ["127.0.0.3"]
  protocol: HBONE
  canonicalName: echo
  canonicalRevision: v2
  services: {{"demo/echo.demo.svc.cluster.local": {{80: {0}}}}}
services:
- name: echo
  namespace: demo
  hostname: echo.demo.svc.cluster.local
  vips: ["/127.10.0.10"]
  ports: {{80: {0}}}
policies:
- name: deny-port-9
  namespace: demo
  scope: Namespace
  action: Deny
  rules:
  - - - destinationPorts: [9]
)", echo_port);
}

struct Pair {
  std::string dir = make_temp_dir();
  EchoApp echo{"127.0.0.3"};
  AccessLogCapture log;
  std::unique_ptr<RunningZtunnel> server, client;
  // `tweak` adjusts both configs (e.g. `if (c.bind_address == server_ip) ...`).
  explicit Pair(unsigned workers = 1, const std::function<void(ztunnel::Config&)>& tweak = {}) {
    (void)ambient::log::set_level("warn");  // keep the test output short...
    telemetry::access_logger()->set_level(spdlog::level::debug);  // ...but capture every access record
    write_cacerts(dir + "/cacerts");
    std::ofstream(dir + "/mesh.yaml") << mesh_yaml(echo.port());
    auto server_config = pair_config(dir + "/mesh.yaml", dir + "/cacerts", "127.0.0.3", "demo/server/server", workers);
    auto client_config = pair_config(dir + "/mesh.yaml", dir + "/cacerts", "127.0.0.2", "demo/client/client", workers);
    if (tweak) {
      tweak(server_config);
      tweak(client_config);
    }
    server = std::make_unique<RunningZtunnel>(std::move(server_config));
    client = std::make_unique<RunningZtunnel>(std::move(client_config));
  }
  ~Pair() {
    client.reset();
    server.reset();
    std::filesystem::remove_all(dir);
  }
};

}  // namespace

TEST_SUITE("ztunnel/integration/pair") {
  TEST_CASE("SOCKS5 -> HBONE -> app: byte-exact both ways, identities, metrics and access log") {
    Pair pair;
    asio::io_context io;
    const auto data = pattern(8 << 20, 3);
    auto got = run_coro(io, [&]() -> asio::awaitable<Result<std::vector<std::uint8_t>>> {
      auto c = co_await socks_connect("127.10.0.10", 80);  // the service VIP
      if (!c) co_return c.error();
      CHECK(c->first == 0);
      co_return co_await echo_through(c->second, data);
    }());
    REQUIRE_MESSAGE(got.has_value(), (got ? "" : got.error().message()));
    CHECK(got->size() == data.size());
    CHECK((*got == data));
    pair.log.wait_for("direction=\"outbound\"");
    const std::string log = pair.log.wait_for("direction=\"inbound\"");
    INFO(log);
    CHECK(log.find("direction=\"outbound\"") != std::string::npos);
    CHECK(log.find("direction=\"inbound\"") != std::string::npos);
    CHECK(log.find("src.identity=\"spiffe://cluster.local/ns/demo/sa/client\"") != std::string::npos);
    CHECK(log.find("dst.identity=\"spiffe://cluster.local/ns/demo/sa/server\"") != std::string::npos);
    CHECK(log.find("bytes_sent=8388608 bytes_recv=8388608") != std::string::npos);
    const std::string metrics = http_get(pair.server->app->metrics_endpoint());
    INFO(metrics);
    CHECK(metrics.find("istio_tcp_connections_opened_total{reporter=\"destination\"") != std::string::npos);
    CHECK(metrics.find("source_principal=\"spiffe://cluster.local/ns/demo/sa/client\"") != std::string::npos);
    CHECK(metrics.find("destination_canonical_revision=\"v2\"") != std::string::npos);
    CHECK(metrics.find("connection_security_policy=\"mutual_tls\"} 1") != std::string::npos);
    CHECK(metrics.find("istio_tcp_received_bytes_total{reporter=\"destination\"") != std::string::npos);
    const std::string client_metrics = http_get(pair.client->app->metrics_endpoint());
    CHECK(client_metrics.find("istio_tcp_connections_opened_total{reporter=\"source\"") != std::string::npos);
    CHECK(client_metrics.find("destination_service=\"echo.demo.svc.cluster.local\"") != std::string::npos);
  }

  TEST_CASE("SOCKS5 domain target: a mesh service hostname resolves to its VIP") {
    Pair pair;
    asio::io_context io;
    auto got = run_coro(io, [&]() -> asio::awaitable<Result<std::vector<std::uint8_t>>> {
      auto c = co_await socks_connect("echo.demo.svc.cluster.local", 80);
      if (!c) co_return c.error();
      CHECK(c->first == 0);
      co_return co_await echo_through(c->second, pattern(10'000, 4));
    }());
    REQUIRE_MESSAGE(got.has_value(), (got ? "" : got.error().message()));
    CHECK((*got == pattern(10'000, 4)));
    // The client's outbound record names the service the hostname resolved to.
    const std::string log = pair.log.wait_for("dst.service=\"echo.demo.svc.cluster.local\"");
    CHECK(log.find("dst.service=\"echo.demo.svc.cluster.local\"") != std::string::npos);
  }

  TEST_CASE("1000 concurrent connections share pooled HBONE connections (100 streams each)") {
    Pair pair(1);
    asio::io_context io;
    int good = 0;
    run_coro(io, [&]() -> asio::awaitable<void> {
      constexpr int kConns = 1000;
      std::vector<std::optional<net::TcpStream>> open(kConns);
      int connected = 0;
      // Open all 1000 tunnels and keep them open at the same time.
      {
        int remaining = kConns;
        asio::steady_timer all(io, asio::steady_timer::time_point::max());
        for (int i = 0; i < kConns; ++i)
          asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
                auto c = co_await socks_connect("127.0.0.3", pair.echo.port());
                if (c && c->first == 0) {
                  open[static_cast<std::size_t>(i)].emplace(std::move(c->second));
                  ++connected;
                }
                if (--remaining == 0) all.cancel();
              }, asio::detached);
        co_await all.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      CHECK(connected == kConns);
      const auto stats = pair.client->app->pool_stats();
      MESSAGE("pooled HBONE connections for 1000 open tunnels: ", stats.connections, " (connects attempted ",
              stats.connects_attempted, ")");
      CHECK(stats.connections == 10);
      CHECK(stats.connects_attempted == 10);
      // Every tunnel still carries its own bytes.
      int remaining = kConns;
      asio::steady_timer all(io, asio::steady_timer::time_point::max());
      for (int i = 0; i < kConns; ++i)
        asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
              if (auto& s = open[static_cast<std::size_t>(i)]) {
                auto data = pattern(4096 + static_cast<std::size_t>(i), static_cast<std::uint32_t>(i));
                auto got = co_await echo_through(*s, data);
                if (got && *got == data) ++good;
              }
              if (--remaining == 0) all.cancel();
            }, asio::detached);
      co_await all.async_wait(asio::as_tuple(asio::use_awaitable));
    }());
    CHECK(good == 1000);
  }

  TEST_CASE("policy deny: the server answers 401, the client's connection is refused") {
    Pair pair;
    asio::io_context io;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await socks_connect("127.0.0.3", 9);  // DENY destinationPorts [9]
      REQUIRE(c);
      CHECK(c->first == 0x02);  // SOCKS5 "connection not allowed by ruleset"
      std::uint8_t buf[16];
      auto n = co_await c->second.read_some(buf);
      CHECK((!n || *n == 0));  // closed
    }());
    pair.log.wait_for("policy rejection");
    const std::string log = pair.log.wait_for("answered 401");
    INFO(log);
    CHECK(log.find("policy rejection: deny: explicitly denied by: demo/deny-port-9") != std::string::npos);
    CHECK(log.find("answered 401") != std::string::npos);
    CHECK(pair.server->app->counters().denied_total.load() == 1);
    const std::string metrics = http_get(pair.server->app->metrics_endpoint());
    CHECK(metrics.find("response_flags=\"DENY\"") != std::string::npos);
  }

  TEST_CASE("unknown destination: plain TCP passthrough") {
    Pair pair;
    EchoApp outside("127.0.0.9");  // not in the mesh config
    asio::io_context io;
    auto got = run_coro(io, [&]() -> asio::awaitable<Result<std::vector<std::uint8_t>>> {
      auto c = co_await socks_connect("127.0.0.9", outside.port());
      if (!c) co_return c.error();
      CHECK(c->first == 0);
      co_return co_await echo_through(c->second, pattern(100'000, 9));
    }());
    REQUIRE(got);
    CHECK((*got == pattern(100'000, 9)));
    const std::string log = pair.log.wait_for(fmt::format("dst.addr=127.0.0.9:{}", outside.port()));
    CHECK(log.find(fmt::format("dst.addr=127.0.0.9:{}", outside.port())) != std::string::npos);
    CHECK(pair.server->app->counters().inbound_total.load() == 0);  // it never touched the server ztunnel
  }

  TEST_CASE("backend reset mid-stream: the client gets the bytes sent before it, then a reset, never a clean end") {
    Pair pair;
    // An app on the server workload that sends 256 KiB and then resets its connection (abortive close).
    asio::io_context app_io(1);
    auto acceptor = net::listen(app_io.get_executor(), {asio::ip::make_address("127.0.0.3"), 0});
    REQUIRE(acceptor);
    const std::uint16_t port = acceptor->local_endpoint().port();
    const auto sent = pattern(256 << 10, 4);
    bool app_reset = false;
    std::thread app([&] {
      run_coro(app_io, [&]() -> asio::awaitable<void> {
        auto c = co_await net::accept(*acceptor);
        if (!c) co_return;
        std::array<std::uint8_t, 1> go{};  // the tunnel is up (an app resetting at once gets a 503 instead)
        auto n = co_await c->read_some(go);
        if (!n || *n != 1) co_return;
        app_reset = static_cast<bool>(co_await c->write_all(sent));
        c->close();
      }());
    });
    asio::io_context io;
    std::size_t got = 0;
    auto end = run_coro(io, [&]() -> asio::awaitable<Result<void>> {
      auto c = co_await socks_connect("127.0.0.3", port);
      if (!c) co_return c.error();
      REQUIRE(c->first == 0);
      const std::uint8_t go[] = {'g'};
      REQUIRE(co_await c->second.write_all(go));
      std::vector<std::uint8_t> buf(64 << 10);
      for (;;) {
        auto n = co_await c->second.read_some(buf);
        if (!n) co_return n.error();
        if (*n == 0) co_return ok();  // a clean end: what must not happen
        got += *n;
      }
    }());
    app.join();
    INFO(pair.log.text());
    CHECK(app_reset);
    CHECK(got <= sent.size());
    REQUIRE_FALSE(end.has_value());
    CHECK(end.error().code == ECONNRESET);
    const std::string log = pair.log.wait_for("Connection reset by peer");
    CHECK(log.find("Connection reset by peer") != std::string::npos);  // the server side names the cause
  }

  TEST_CASE("server drain: GOAWAY on inbound HBONE connections, the live tunnel still finishes") {
    Pair pair;
    asio::io_context io;
    auto got = run_coro(io, [&]() -> asio::awaitable<Result<std::vector<std::uint8_t>>> {
      auto c = co_await socks_connect("127.0.0.3", pair.echo.port());
      if (!c) co_return c.error();
      CHECK(pair.client->app->pool_stats().connections == 1);
      pair.server->app->shutdown();  // the server ztunnel starts draining while the tunnel is open
      asio::steady_timer t(io, 300ms);
      co_await t.async_wait(asio::use_awaitable);
      // The client's pool saw the GOAWAY: that connection takes no new streams.
      CHECK(pair.client->app->pool_stats().connections == 0);
      co_return co_await echo_through(c->second, pattern(1 << 20, 6));
    }());
    REQUIRE_MESSAGE(got.has_value(), (got ? "" : got.error().message()));
    CHECK((*got == pattern(1 << 20, 6)));
  }

  TEST_CASE("drain: SIGTERM path lets a live tunnel finish inside the deadline") {
    Pair pair;
    asio::io_context io;
    auto got = run_coro(io, [&]() -> asio::awaitable<Result<std::vector<std::uint8_t>>> {
      auto c = co_await socks_connect("127.0.0.3", pair.echo.port());
      if (!c) co_return c.error();
      pair.client->app->shutdown();  // drain starts while the tunnel is open
      asio::steady_timer t(io, 200ms);
      co_await t.async_wait(asio::use_awaitable);
      co_return co_await echo_through(c->second, pattern(1 << 20, 5));
    }());
    REQUIRE_MESSAGE(got.has_value(), (got ? "" : got.error().message()));
    CHECK((*got == pattern(1 << 20, 5)));
    // New connections are refused once draining.
    auto refused = run_coro(io, [&]() -> asio::awaitable<bool> {
      auto s = co_await net::connect({asio::ip::make_address("127.0.0.2"), 15080}, 2s);
      co_return !s.has_value();
    }());
    CHECK(refused);
  }

  TEST_CASE("HTTP/2 abuse on 15008 from a meshed peer: GOAWAY(ENHANCE_YOUR_CALM), other tunnels unaffected") {
    namespace hf = ambient::test::h2frames;
    Pair pair;
    // A workload with a valid mesh certificate (same CA) that floods the server ztunnel's HBONE port.
    auto ctx = mesh_client_context(pair.dir + "/cacerts", tls::SpiffeId{"cluster.local", "demo", "client"});
    const std::string target = fmt::format("127.0.0.3:{}", pair.echo.port());
    std::string rapid_reset = hf::settings();
    for (std::uint32_t i = 0; i < 3000; ++i)
      rapid_reset += hf::headers(2 * i + 1, hf::connect_block(target)) + hf::rst_stream(2 * i + 1, 0x8);
    std::string ping_flood = hf::settings();
    for (int i = 0; i < 20000; ++i) ping_flood += hf::ping(static_cast<std::uint64_t>(i));
    asio::io_context io;
    for (const auto* attack : {&rapid_reset, &ping_flood}) {
      CAPTURE((attack == &rapid_reset ? "rapid reset" : "PING flood"));
      auto r = run_coro(io, attack_hbone({asio::ip::make_address("127.0.0.3"), 15008}, ctx.get(),
                                         "spiffe://cluster.local/ns/demo/sa/server", *attack, 5s));
      CHECK(r.closed);
      REQUIRE(r.frames.goaway_code.has_value());
      CHECK(*r.frames.goaway_code == 0xb);  // ENHANCE_YOUR_CALM
      CHECK(r.frames.ping_acks <= 1100);
      CHECK(r.frames.goaway_last_stream <= 2 * 260 + 1);
    }
    // Few rapid-reset streams reached the app; the mesh still carries a normal tunnel byte-exact.
    auto got = run_coro(io, [&]() -> asio::awaitable<Result<std::vector<std::uint8_t>>> {
      auto c = co_await socks_connect("127.0.0.3", pair.echo.port());
      if (!c) co_return c.error();
      co_return co_await echo_through(c->second, pattern(1 << 20, 8));
    }());
    REQUIRE_MESSAGE(got.has_value(), (got ? "" : got.error().message()));
    CHECK((*got == pattern(1 << 20, 8)));
    CHECK(pair.server->app->counters().inbound_total.load() < 300);
  }

  TEST_CASE("MAX_CONNECTIONS: connections past the cap are reset at once; a slot frees when one closes") {
    Pair pair(1, [](ztunnel::Config& c) {
      if (c.bind_address == asio::ip::make_address("127.0.0.2")) c.max_connections = 4;
    });
    asio::io_context io;
    run_coro(io, [&]() -> asio::awaitable<void> {
      std::vector<net::TcpStream> held;
      for (int i = 0; i < 4; ++i) {
        auto c = co_await socks_connect("127.0.0.3", pair.echo.port());
        REQUIRE(c);
        CHECK(c->first == 0);
        held.push_back(std::move(c->second));
      }
      CHECK(pair.client->app->counters().connections.open() == 4);
      const auto started = std::chrono::steady_clock::now();
      auto fifth = co_await socks_connect("127.0.0.3", pair.echo.port());
      CHECK_FALSE(fifth.has_value());  // reset before the SOCKS5 greeting is answered
      CHECK(std::chrono::steady_clock::now() - started < 1s);
      CHECK(pair.client->app->counters().connections.refused() == 1);
      held.front().close();
      CHECK(wait_for([&] { return pair.client->app->counters().connections.open() == 3; }));
      auto again = co_await socks_connect("127.0.0.3", pair.echo.port());
      REQUIRE(again);
      auto got = co_await echo_through(again->second, pattern(100'000, 4));
      REQUIRE(got);
      CHECK((*got == pattern(100'000, 4)));
    }());
  }

  TEST_CASE("slowloris on 15008: stalled TLS handshakes are cut at HBONE_HANDSHAKE_TIMEOUT, tunnels flow, no fd leak") {
    Pair pair(1, [](ztunnel::Config& c) {
      if (c.bind_address == asio::ip::make_address("127.0.0.3")) c.hbone_handshake_timeout = 300ms;
    });
    asio::io_context io;
    // One tunnel first: the pooled HBONE connection and this io_context's reactor exist before the count.
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await socks_connect("127.0.0.3", pair.echo.port());
      REQUIRE(c);
      REQUIRE(co_await echo_through(c->second, pattern(1000, 10)));
    }());
    CHECK(wait_for([&] { return pair.server->app->counters().live.load() == 0; }));
    const int fds_before = open_fd_count();
    run_coro(io, [&]() -> asio::awaitable<void> {
      using namespace asio::experimental::awaitable_operators;
      // 100 connections that send 5 bytes of a TLS record header and then nothing.
      std::vector<net::TcpStream> slow;
      for (int i = 0; i < 100; ++i) {
        auto c = co_await net::connect({asio::ip::make_address("127.0.0.3"), 15008}, 5s);
        REQUIRE(c);
        const std::uint8_t dribble[] = {0x16, 0x03, 0x01, 0x02, 0x00};
        REQUIRE(co_await c->write_all(dribble));
        slow.push_back(std::move(*c));
      }
      const auto started = std::chrono::steady_clock::now();
      // Meanwhile a real tunnel is served.
      auto c = co_await socks_connect("127.0.0.3", pair.echo.port());
      REQUIRE(c);
      auto got = co_await echo_through(c->second, pattern(1 << 20, 11));
      REQUIRE(got);
      CHECK((*got == pattern(1 << 20, 11)));
      // Every stalled connection is closed by the server.
      int closed = 0;
      for (auto& s : slow) {
        std::uint8_t buf[64];
        auto n = co_await (s.read_some(buf) || sleep_for(3s));
        if (n.index() == 0) {
          auto& r = std::get<0>(n);
          if (!r || *r == 0) ++closed;
        }
      }
      const auto took = std::chrono::steady_clock::now() - started;
      CHECK(closed == 100);
      CHECK(took < 3s);
      for (auto& s : slow) s.close();
    }());
    // Nothing leaked: the process (test, both ztunnels, the echo app) is back to its descriptors.
    INFO("fds before " << fds_before << ", after " << open_fd_count());
    CHECK(wait_for([&] { return open_fd_count() <= fds_before; }, 5s));
  }

  TEST_CASE("HBONE_IDLE_TIMEOUT: the server closes an inbound HBONE connection that carried no tunnel for the timeout") {
    Pair pair(1, [](ztunnel::Config& c) {
      if (c.bind_address == asio::ip::make_address("127.0.0.3")) c.h2.idle_timeout = 300ms;
    });
    asio::io_context io;
    auto tunnel = [&](std::uint32_t seed) {
      return run_coro(io, [&]() -> asio::awaitable<Result<std::vector<std::uint8_t>>> {
        auto c = co_await socks_connect("127.0.0.3", pair.echo.port());
        if (!c) co_return c.error();
        co_return co_await echo_through(c->second, pattern(10'000, seed));
      }());
    };
    REQUIRE(tunnel(1));
    CHECK(pair.client->app->pool_stats().connections == 1);
    // The client's pool keeps it for 5 minutes; the server's idle timeout ends it first (GOAWAY NO_ERROR).
    CHECK(wait_for([&] { return pair.client->app->pool_stats().connections == 0; }, 3s));
    auto again = tunnel(2);  // the pool dials a new connection
    REQUIRE(again);
    CHECK((*again == pattern(10'000, 2)));
  }
}
