#include "test/fake_istiod/admin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/base/json.h"

namespace fake_istiod {

using ambient::ErrorKind;
using ambient::errorf;

namespace {

constexpr std::size_t kMaxRequestHead = 8 * 1024;

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      const auto [end, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc{} && end == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
        continue;
      }
    }
    out += s[i] == '+' ? ' ' : s[i];
  }
  return out;
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void respond(int fd, int code, std::string_view reason, std::string_view body) {
  write_all(fd, fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
                            "Connection: close\r\n\r\n{}",
                            code, reason, body.size(), body));
}

std::string error_body(std::string_view message) { return "{\"error\": " + ambient::json::quote(message) + "}\n"; }

}  // namespace

ambient::Result<std::pair<std::string, std::uint16_t>> split_host_port(std::string_view flag, std::string_view value) {
  const auto colon = value.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return errorf(ErrorKind::InvalidArgument, "{} {}: want HOST:PORT", flag, value);
  std::string host(value.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  const auto p = value.substr(colon + 1);
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (p.empty() || ec != std::errc{} || end != p.data() + p.size() || port > 65535)
    return errorf(ErrorKind::InvalidArgument, "{} {}: port \"{}\" is not 0..65535", flag, value, p);
  return std::pair{host, static_cast<std::uint16_t>(port)};
}

ambient::Result<std::unique_ptr<AdminServer>> AdminServer::start(const std::string& host, std::uint16_t port,
                                                                 AdminHandlers handlers) {
  const std::string h = host == "localhost" ? "127.0.0.1" : host;
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&ss); ::inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
  } else if (auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss); ::inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
    family = AF_INET6;
  } else {
    return errorf(ErrorKind::InvalidArgument, "--admin: \"{}\" is not an IP address", host);
  }
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errorf(ErrorKind::Io, "admin socket: {}", std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 16) != 0) {
    const int e = errno;
    ::close(fd);
    return errorf(ErrorKind::Io, "admin bind {}:{}: {}", host, port, std::strerror(e));
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  const std::uint16_t p = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                                  : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return std::unique_ptr<AdminServer>(new AdminServer(fd, p, std::move(handlers)));
}

AdminServer::AdminServer(int fd, std::uint16_t port, AdminHandlers handlers)
    : fd_(fd), port_(port), handlers_(std::move(handlers)) {
  thread_ = std::thread([this] { serve(); });
}

AdminServer::~AdminServer() {
  ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
  thread_.join();
  ::close(fd_);
}

void AdminServer::serve() {
  for (;;) {
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down (EINVAL) or a fatal error
    }
    timeval tv{2, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    handle(c);
    ::close(c);
  }
}

void AdminServer::handle(int fd) {
  std::string head;
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() > kMaxRequestHead) return respond(fd, 400, "Bad Request", error_body("request head over 8 KiB"));
    char buf[2048];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // closed or timed out
    head.append(buf, static_cast<std::size_t>(n));
  }
  const std::string_view line = std::string_view(head).substr(0, head.find("\r\n"));
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return respond(fd, 400, "Bad Request", error_body("bad request line"));
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);

  if (path == "/answer-latencies") {
    if (method != "GET") return respond(fd, 405, "Method Not Allowed", error_body("use GET /answer-latencies"));
    return respond(fd, 200, "OK", handlers_.answer_latencies());
  }
  if (path == "/status") {
    if (method != "GET") return respond(fd, 405, "Method Not Allowed", error_body("use GET /status"));
    return respond(fd, 200, "OK", handlers_.status());
  }
  if (path == "/fault") {
    if (method != "POST") return respond(fd, 405, "Method Not Allowed", error_body("use POST /fault?name=value"));
    if (query.empty()) return respond(fd, 400, "Bad Request", error_body("no fault given: POST /fault?name=value"));
    std::string_view rest = query;
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
      if (pair.empty()) continue;
      const auto eq = pair.find('=');
      const std::string name = percent_decode(pair.substr(0, eq));
      const std::string value = eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
      spdlog::info("admin: fault {}={}", name, value);
      if (auto r = handlers_.fault(name, value); !r)
        return respond(fd, 400, "Bad Request", error_body(r.error().context));
    }
    return respond(fd, 200, "OK", handlers_.status());
  }
  respond(fd, 404, "Not Found", error_body("unknown path; try GET /status or POST /fault?name=value"));
}

}  // namespace fake_istiod
