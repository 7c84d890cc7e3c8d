#pragma once
// Test clients and apps around a ztunnel pair: an echo app, a SOCKS5 client (through the client
// ztunnel's 15080 on 127.0.0.2), a full-duplex echo round trip, and an HTTP GET (metrics, admin).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "common/net/tcp_stream.h"
#include "test/support/run_coro.h"
#include "test/support/wait.h"

namespace ambient::test {

// Echo app: every connection echoes until EOF, then half-closes.
struct EchoApp {
  boost::asio::io_context io{1};
  boost::asio::ip::tcp::acceptor acceptor;
  std::thread thread;
  explicit EchoApp(const char* ip)
      : acceptor(*net::listen(io.get_executor(), {boost::asio::ip::make_address(ip), 0}, net::ListenOptions{.backlog = 4096})) {
    boost::asio::co_spawn(io, loop(), boost::asio::detached);
    thread = std::thread([this] { io.run(); });
  }
  ~EchoApp() {
    boost::asio::post(io, [this] {
      boost::system::error_code ec;
      acceptor.close(ec);
      io.stop();
    });
    thread.join();
  }
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
  boost::asio::awaitable<void> loop() {
    for (;;) {
      auto c = co_await net::accept(acceptor);
      if (!c) co_return;
      boost::asio::co_spawn(io, [s = std::move(*c)]() mutable -> boost::asio::awaitable<void> {
            std::vector<std::uint8_t> buf(64 << 10);
            for (;;) {
              auto n = co_await s.read_some(buf);
              if (!n || *n == 0) break;
              if (!co_await s.write_all(std::span<const std::uint8_t>(buf.data(), *n))) co_return;
            }
            (void)co_await s.shutdown_write();
          }, boost::asio::detached);
    }
  }
};

// SOCKS5 CONNECT to ip:port (or a domain name) through the client ztunnel; returns the reply code
// (0 = success) and the stream.
inline boost::asio::awaitable<Result<std::pair<int, net::TcpStream>>> socks_connect(std::string host, std::uint16_t port) {
  auto s = co_await net::connect({boost::asio::ip::make_address("127.0.0.2"), 15080}, std::chrono::seconds(5));
  if (!s) co_return s.error();
  const std::uint8_t hello[] = {5, 1, 0};
  if (auto r = co_await s->write_all(hello); !r) co_return r.error();
  std::uint8_t reply[10];
  std::size_t got = 0;
  while (got < 2) {
    auto n = co_await s->read_some(std::span<std::uint8_t>(reply + got, 2 - got));
    if (!n || *n == 0) co_return make_error(ErrorKind::Closed, "socks greeting");
    got += *n;
  }
  std::vector<std::uint8_t> req = {5, 1, 0};
  boost::system::error_code ec;
  auto v4 = boost::asio::ip::make_address_v4(host, ec);
  if (!ec) {
    req.push_back(1);
    for (auto b : v4.to_bytes()) req.push_back(b);
  } else {
    req.push_back(3);
    req.push_back(static_cast<std::uint8_t>(host.size()));
    req.insert(req.end(), host.begin(), host.end());
  }
  req.push_back(static_cast<std::uint8_t>(port >> 8));
  req.push_back(static_cast<std::uint8_t>(port));
  if (auto r = co_await s->write_all(req); !r) co_return r.error();
  got = 0;
  while (got < 10) {
    auto n = co_await s->read_some(std::span<std::uint8_t>(reply + got, 10 - got));
    if (!n || *n == 0) break;
    got += *n;
  }
  if (got < 2) co_return make_error(ErrorKind::Closed, "socks reply");
  co_return std::pair<int, net::TcpStream>(reply[1], std::move(*s));
}


inline boost::asio::awaitable<Result<std::vector<std::uint8_t>>> echo_through(net::TcpStream& s, const std::vector<std::uint8_t>& data) {
  using namespace boost::asio::experimental::awaitable_operators;
  Result<void> w = ok();
  std::vector<std::uint8_t> got;
  auto writer = [&]() -> boost::asio::awaitable<void> {
    for (std::size_t off = 0; off < data.size(); off += 65536) {
      w = co_await s.write_all(std::span<const std::uint8_t>(data).subspan(off, std::min<std::size_t>(65536, data.size() - off)));
      if (!w) co_return;
    }
    w = co_await s.shutdown_write();
  };
  auto reader = [&]() -> boost::asio::awaitable<void> {
    std::vector<std::uint8_t> buf(65536);
    for (;;) {
      auto n = co_await s.read_some(buf);
      if (!n || *n == 0) co_return;
      got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    }
  };
  co_await (writer() && reader());
  if (!w) co_return w.error();
  co_return got;
}

inline std::string http_get(const boost::asio::ip::tcp::endpoint& ep, const std::string& path = "/metrics") {
  boost::asio::io_context io;
  return run_coro(io, [&]() -> boost::asio::awaitable<std::string> {
    auto s = co_await net::connect(ep, std::chrono::seconds(5));
    if (!s) co_return std::string();
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    (void)co_await s->write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(req.data()), req.size()));
    std::string out;
    std::vector<std::uint8_t> buf(65536);
    for (;;) {
      auto n = co_await s->read_some(buf);
      if (!n || *n == 0) break;
      out.append(reinterpret_cast<const char*>(buf.data()), *n);
    }
    co_return out;
  }());
}

// The client (127.0.0.2) and server (127.0.0.3) workloads and the echo service on the server, as
// fake-istiod serves them to the xDS tests.
inline std::string two_workloads_yaml(std::uint16_t echo_port) {
  return fmt::format(R"(
workloads:
- uid: Kubernetes//Pod/demo/client
  name: client
  namespace: demo
  serviceAccount: client
  workloadIps: ["127.0.0.2"]
  protocol: HBONE
- uid: Kubernetes//Pod/demo/server
  name: server
  namespace: demo
  serviceAccount: server
  workloadIps: ["127.0.0.3"]
  protocol: HBONE
  services: {{"demo/echo.demo.svc.cluster.local": {{80: {0}}}}}
services:
- name: echo
  namespace: demo
  hostname: echo.demo.svc.cluster.local
  vips: ["/127.10.0.10"]
  ports: {{80: {0}}}
)", echo_port);
}

// Polls `pred` every 20 ms until it holds or `timeout` passes (test/support/wait.h).
inline bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  return wait_until(pred, timeout);
}

}  // namespace ambient::test
