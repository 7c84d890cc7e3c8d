#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/base/log.h"
#include "common/net/tcp_stream.h"
#include "test/common/h2/h2_fixture.h"  // pattern()
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
  explicit Pair(unsigned workers = 1) {
    (void)ambient::log::set_level("warn");  // keep the test output short...
    telemetry::access_logger()->set_level(spdlog::level::debug);  // ...but capture every access record
    write_cacerts(dir + "/cacerts");
    std::ofstream(dir + "/mesh.yaml") << mesh_yaml(echo.port());
    server = std::make_unique<RunningZtunnel>(pair_config(dir + "/mesh.yaml", dir + "/cacerts", "127.0.0.3", "demo/server/server", workers));
    client = std::make_unique<RunningZtunnel>(pair_config(dir + "/mesh.yaml", dir + "/cacerts", "127.0.0.2", "demo/client/client", workers));
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
}
