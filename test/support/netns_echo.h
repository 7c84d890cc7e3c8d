#pragma once
// Blocking TCP helpers for network-namespace end-to-end tests: an echo server listening inside a netns (one
// thread per connection, stopped on destruction) and clients whose sockets are created inside a pod's netns,
// as the pod's own app would create them. Every call is bounded by a timeout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/net/netns.h"

namespace ambient::test {

inline sockaddr_in v4_address(const std::string& ip, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

inline void set_timeouts(int fd, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000), static_cast<suseconds_t>((t.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// Echoes every connection on ip:port inside the netns; records the peer address of the last connection.
class NetnsEchoServer {
 public:
  NetnsEchoServer(int netns_fd, const std::string& ip, std::uint16_t port) {
    auto fd = net::in_netns(netns_fd, [&]() -> int { return ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); });
    if (!fd || *fd < 0) return;
    listen_fd_ = *fd;
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    auto a = v4_address(ip, port);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(listen_fd_, 128) != 0) return;
    ok_ = true;
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~NetnsEchoServer() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    for (auto& t : connections_) t.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  bool ok() const { return ok_; }
  std::string last_peer() const {
    std::lock_guard<std::mutex> l(mu_);
    return last_peer_;
  }
  std::size_t accepted() const { return accepted_.load(); }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      sockaddr_in peer{};
      socklen_t len = sizeof(peer);
      const int c = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
      if (c < 0) continue;
      char text[INET_ADDRSTRLEN] = {};
      ::inet_ntop(AF_INET, &peer.sin_addr, text, sizeof(text));
      {
        std::lock_guard<std::mutex> l(mu_);
        last_peer_ = text;
      }
      ++accepted_;
      connections_.emplace_back([this, c] { echo(c); });
    }
  }
  void echo(int fd) {
    char buf[16384];
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      if (::send(fd, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) break;
    }
    ::close(fd);
  }

  int listen_fd_ = -1;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::list<std::thread> connections_;  // touched by the acceptor thread only, joined at destruction
  mutable std::mutex mu_;
  std::string last_peer_;
  std::atomic<std::size_t> accepted_{0};
};

// A client connection made from inside a netns. ok() false if the connect failed (refused, timed out).
class NetnsClient {
 public:
  NetnsClient(int netns_fd, const std::string& ip, std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto fd = net::in_netns(netns_fd, [&]() -> int { return ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); });
    if (!fd || *fd < 0) return;
    fd_ = *fd;
    set_timeouts(fd_, timeout);
    auto a = v4_address(ip, port);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~NetnsClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  NetnsClient(const NetnsClient&) = delete;
  NetnsClient& operator=(const NetnsClient&) = delete;
  bool ok() const { return ok_; }
  // Sends `msg` and reads the same number of bytes back; nullopt on any failure (reset, timeout, EOF).
  std::optional<std::string> round_trip(const std::string& msg) {
    if (!ok_ || ::send(fd_, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size())) return std::nullopt;
    std::string back;
    char buf[16384];
    while (back.size() < msg.size()) {
      const ssize_t n = ::recv(fd_, buf, std::min(sizeof(buf), msg.size() - back.size()), 0);
      if (n <= 0) return std::nullopt;
      back.append(buf, static_cast<std::size_t>(n));
    }
    return back;
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

// One connection, one message, its echo: true if it came back intact.
inline bool echo_once(int netns_fd, const std::string& ip, std::uint16_t port, const std::string& msg,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  NetnsClient c(netns_fd, ip, port, timeout);
  auto back = c.round_trip(msg);
  return back && *back == msg;
}

}  // namespace ambient::test
