#pragma once
// Test HTTP/1.1 peers for the waypoint, written on Boost.Beast (synchronous, a thread per connection), so the
// waypoint's own codec is checked against an independent implementation on both sides.
//
// HttpBackend (the app behind a server ztunnel), by target path:
//   /status/<code>     answers <code>
//   /flaky             answers 503 to its first `flaky_failures` requests, then 200
//   /delay/<ms>        answers 200 after <ms>
//   /delay/<ms>/body   sends the head and half of a 64-byte body at once, the other half after <ms>
//   /chunked           a chunked body of three pieces
//   /reset             closes the connection without answering
//   anything else      200; POST/PUT echo the body
// Every answer carries x-backend: <name> and a body "<name> <method> <target>\n" followed by one line per request
// header "<name>: <value>" (so a test sees what reached the app). An Upgrade request gets 101 and then every byte
// is echoed until EOF (a WebSocket-shaped byte stream).
// http_request(): a SOCKS5 CONNECT through a ztunnel's 15080, then one or more HTTP/1.1 exchanges (Beast).
#include <doctest/doctest.h>

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "common/base/result.h"
#include "common/net/netns.h"

namespace ambient::test {

namespace beast_http = boost::beast::http;

class HttpBackend {
 public:
  HttpBackend(std::string name, const char* ip, std::uint16_t port, int flaky_failures = 2)
      : name_(std::move(name)), flaky_left_(flaky_failures), acceptor_(io_) {
    using boost::asio::ip::tcp;
    const tcp::endpoint ep(boost::asio::ip::make_address(ip), port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(1024);
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~HttpBackend() {
    stopping_ = true;
    // shutdown() wakes the thread blocked in accept() (Linux), then the acceptor closes.
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    boost::system::error_code ec;
    acceptor_.close(ec);
    std::lock_guard lock(mu_);
    // The syscall, not socket::shutdown: that writes the socket object's state while serve() reads it.
    for (auto& s : sockets_) ::shutdown(s->native_handle(), SHUT_RDWR);
    for (auto& t : conns_)
      if (t.joinable()) t.join();
  }
  std::uint64_t requests() const { return requests_.load(); }
  std::uint64_t connections() const { return connections_.load(); }
  std::vector<std::string> hosts() {  // the Host header of every request so far
    std::lock_guard lock(mu_);
    return hosts_;
  }

 private:
  void accept_loop() {
    while (!stopping_) {
      auto sock = std::make_shared<boost::asio::ip::tcp::socket>(io_);
      boost::system::error_code ec;
      acceptor_.accept(*sock, ec);
      if (ec || stopping_) return;
      ++connections_;
      std::lock_guard lock(mu_);
      sockets_.push_back(sock);
      conns_.emplace_back([this, sock] { serve(*sock); });
    }
  }

  void serve(boost::asio::ip::tcp::socket& sock) {
    boost::beast::flat_buffer buf;
    for (;;) {
      beast_http::request<beast_http::string_body> req;
      boost::system::error_code ec;
      beast_http::read(sock, buf, req, ec);
      if (ec) return;
      ++requests_;
      const std::string target(req.target());
      {
        std::lock_guard lock(mu_);
        hosts_.emplace_back(req[beast_http::field::host]);
      }
      if (req.find(beast_http::field::upgrade) != req.end()) {
        beast_http::response<beast_http::empty_body> res(beast_http::status::switching_protocols, 11);
        res.set(beast_http::field::upgrade, req[beast_http::field::upgrade]);
        res.set(beast_http::field::connection, "Upgrade");
        res.set("x-backend", name_);
        beast_http::write(sock, res, ec);
        if (ec) return;
        // Bytes the parser read past the request belong to the upgraded stream.
        if (buf.size() > 0) {
          boost::asio::write(sock, buf.data(), ec);
          buf.consume(buf.size());
        }
        std::vector<char> b(16384);
        for (;;) {
          const std::size_t n = sock.read_some(boost::asio::buffer(b), ec);
          if (ec || n == 0) break;
          boost::asio::write(sock, boost::asio::buffer(b.data(), n), ec);
          if (ec) break;
        }
        sock.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
        return;
      }
      if (target.starts_with("/reset")) {  // the app dies mid-request: no response, the connection closes
        std::lock_guard lock(mu_);  // ~HttpBackend reads the handle under this lock (a closed one is -1)
        sock.close(ec);
        return;
      }
      if (target.starts_with("/delay/") && target.ends_with("/body")) {  // a response whose body stalls
        const std::string half(32, 'x');
        const std::string head = "HTTP/1.1 200 OK\r\ncontent-length: 64\r\nx-backend: " + name_ + "\r\n\r\n";
        boost::asio::write(sock, boost::asio::buffer(head + half), ec);
        std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(target.substr(7))));
        if (!ec) boost::asio::write(sock, boost::asio::buffer(half), ec);
        if (ec) return;
        continue;
      }
      int status = 200;
      if (target.starts_with("/status/")) status = std::stoi(target.substr(8));
      if (target.starts_with("/flaky")) status = flaky_left_.fetch_sub(1) > 0 ? 503 : 200;
      if (target.starts_with("/delay/")) std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(target.substr(7))));
      std::string body = name_ + " " + std::string(req.method_string()) + " " + target + "\n";
      for (const auto& f : req) body += std::string(f.name_string()) + ": " + std::string(f.value()) + "\n";
      if (req.method() == beast_http::verb::post || req.method() == beast_http::verb::put) body += "body: " + req.body() + "\n";
      beast_http::response<beast_http::string_body> res(static_cast<beast_http::status>(status), req.version());
      res.set("x-backend", name_);
      res.keep_alive(req.keep_alive());
      if (target.starts_with("/chunked")) {
        res.chunked(true);
        res.body() = body + "piece-2\npiece-3\n";
      } else {
        res.body() = std::move(body);
        res.prepare_payload();
      }
      beast_http::write(sock, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  }

  std::string name_;
  std::atomic<int> flaky_left_;
  std::atomic<std::uint64_t> requests_{0}, connections_{0};
  std::atomic<bool> stopping_{false};
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::mutex mu_;
  std::list<std::shared_ptr<boost::asio::ip::tcp::socket>> sockets_;
  std::list<std::thread> conns_;
  std::vector<std::string> hosts_;
};

// A client connection through a ztunnel's SOCKS5 front (blocking), or (CapturedConnect) a plain TCP connection
// made from inside a pod's network namespace, which the pod's iptables rules capture.
class SocksHttpClient {
 public:
  struct CapturedConnect {
    int netns_fd;  // the socket is created in this netns
  };
  SocksHttpClient(CapturedConnect from, const std::string& ip, std::uint16_t port) : sock_(io_) {
    auto opened = net::in_netns(from.netns_fd, [&]() -> Result<void> {
      boost::system::error_code ec;
      sock_.open(boost::asio::ip::tcp::v4(), ec);
      if (ec) return errorf(ErrorKind::Io, "socket: {}", ec.message());
      return ambient::ok();
    });
    if (!opened) return;
    boost::system::error_code ec;
    sock_.connect({boost::asio::ip::make_address(ip), port}, ec);
    ok_ = !ec;
  }
  // SOCKS5 CONNECT via `socks` ("127.0.0.2", 15080) to ip:port. ok() says whether the tunnel was granted.
  SocksHttpClient(const char* socks_ip, std::uint16_t socks_port, const std::string& ip, std::uint16_t port) : sock_(io_) {
    boost::system::error_code ec;
    sock_.connect({boost::asio::ip::make_address(socks_ip), socks_port}, ec);
    if (ec) return;
    const std::uint8_t hello[] = {5, 1, 0};
    boost::asio::write(sock_, boost::asio::buffer(hello), ec);
    std::uint8_t r2[2];
    boost::asio::read(sock_, boost::asio::buffer(r2), ec);
    if (ec) return;
    std::vector<std::uint8_t> req = {5, 1, 0, 1};
    for (auto b : boost::asio::ip::make_address_v4(ip).to_bytes()) req.push_back(b);
    req.push_back(static_cast<std::uint8_t>(port >> 8));
    req.push_back(static_cast<std::uint8_t>(port));
    boost::asio::write(sock_, boost::asio::buffer(req), ec);
    std::uint8_t r10[10];
    boost::asio::read(sock_, boost::asio::buffer(r10), ec);
    ok_ = !ec && r10[1] == 0;
  }
  bool ok() const { return ok_; }
  boost::asio::ip::tcp::socket& socket() { return sock_; }

  struct Response {
    int status = 0;  // 0: no response (connection failed or closed)
    std::string body;
    std::map<std::string, std::string> headers;  // lower-case names
    bool keep_alive = false;
  };
  // One exchange on this connection.
  Response request(const std::string& method, const std::string& target, const std::vector<std::pair<std::string, std::string>>& headers = {},
                   const std::string& body = {}) {
    beast_http::request<beast_http::string_body> req(beast_http::string_to_verb(method), target, 11);
    req.set(beast_http::field::host, "echo.demo.svc.cluster.local");
    for (const auto& [n, v] : headers) req.set(n, v);
    if (!body.empty() || method == "POST") {
      req.body() = body;
      req.prepare_payload();
    }
    boost::system::error_code ec;
    beast_http::write(sock_, req, ec);
    Response out;
    if (ec) return out;
    beast_http::response<beast_http::string_body> res;
    beast_http::read(sock_, buf_, res, ec);
    if (ec) return out;
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    for (const auto& f : res) {
      std::string n(f.name_string());
      for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[n] = std::string(f.value());
    }
    out.keep_alive = res.keep_alive();
    return out;
  }
  boost::beast::flat_buffer& buffer() { return buf_; }

  // A WebSocket-shaped upgrade on this connection (extra request headers `headers`), then `msg` written and as
  // many bytes read back. status: the response's (0: no response head); echoed: what came back.
  struct Upgraded {
    int status = 0;
    std::string upgrade;  // the response's Upgrade header
    std::string echoed;
    bool read_ok = false;
  };
  Upgraded websocket_echo(const std::string& msg, const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    beast_http::request<beast_http::empty_body> req(beast_http::verb::get, "/ws", 11);
    req.set(beast_http::field::host, "echo");
    req.set(beast_http::field::connection, "Upgrade");
    req.set(beast_http::field::upgrade, "websocket");
    for (const auto& [n, v] : headers) req.set(n, v);
    Upgraded out;
    boost::system::error_code ec;
    beast_http::write(sock_, req, ec);
    if (ec) return out;
    beast_http::response_parser<beast_http::empty_body> p;
    p.skip(true);  // a 101 has no body
    beast_http::read_header(sock_, buf_, p, ec);
    if (ec) return out;
    out.status = static_cast<int>(p.get().result_int());
    out.upgrade = std::string(p.get()[beast_http::field::upgrade]);
    boost::asio::write(sock_, boost::asio::buffer(msg), ec);
    out.echoed.assign(msg.size(), '\0');
    const std::size_t have = std::min(buf_.size(), msg.size());  // bytes the parser read past the head
    boost::asio::buffer_copy(boost::asio::buffer(out.echoed.data(), have), buf_.data());
    buf_.consume(have);
    boost::asio::read(sock_, boost::asio::buffer(out.echoed.data() + have, msg.size() - have), ec);
    out.read_ok = !ec;
    return out;
  }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket sock_;
  boost::beast::flat_buffer buf_;
  bool ok_ = false;
};

}  // namespace ambient::test
