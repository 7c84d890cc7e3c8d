#pragma once
// Drives a client SSL and a server SSL against each other over socketpair(AF_UNIX, SOCK_STREAM): one
// blocking thread per side runs SSL_do_handshake and then one application-data round trip (client writes
// "ping", server answers "pong"). The round trip matters: a TLS 1.3 client finishes its handshake before the
// server has judged the client certificate, so only the exchange shows the client the server's verdict.
//
// Bounds: each socket has 10 s send/receive timeouts so a broken policy fails the test instead of hanging
// it. A side that finishes (either way) shuts down its write half so the peer sees EOF. SIGPIPE is ignored
// process-wide. The SSL objects keep their state after the call for inspection (peer identity, ALPN,
// version, cipher); their fds are closed.
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <openssl/ssl.h>

#include "common/tls/pki.h"
#include "common/tls/tls_context.h"

namespace ambient::tls::testing {

struct SideOutcome {
  bool handshake_ok = false;
  bool exchange_ok = false;  // sent and received the round-trip message
  std::string error;         // failing call, SSL_get_error code and the drained BoringSSL queue
  std::string reason;        // verify_failure(ssl) after the run
};

struct HandshakeOutcome {
  SideOutcome client;
  SideOutcome server;
  bool ok() const { return client.exchange_ok && server.exchange_ok; }
  std::string describe() const {
    return fmt::format("client: hs={} xchg={} reason='{}' error='{}' | server: hs={} xchg={} reason='{}' error='{}'",
                       client.handshake_ok, client.exchange_ok, client.reason, client.error, server.handshake_ok,
                       server.exchange_ok, server.reason, server.error);
  }
};

namespace detail {

inline std::string ssl_failure(SSL* ssl, const char* op, int ret) {
  const int code = SSL_get_error(ssl, ret);
  return fmt::format("{}: SSL_get_error={} errno={} {}", op, code, code == SSL_ERROR_SYSCALL ? errno : 0,
                     drain_ssl_errors());
}

inline bool write_all(SSL* ssl, std::string_view data, std::string& error) {
  while (!data.empty()) {
    const int n = SSL_write(ssl, data.data(), static_cast<int>(data.size()));
    if (n <= 0) {
      error = ssl_failure(ssl, "SSL_write", n);
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

inline bool read_exact(SSL* ssl, std::string_view want, std::string& error) {
  std::string got;
  char buf[64];
  while (got.size() < want.size()) {
    const int n = SSL_read(ssl, buf, static_cast<int>(std::min(sizeof buf, want.size() - got.size())));
    if (n <= 0) {
      error = ssl_failure(ssl, "SSL_read", n);
      return false;
    }
    got.append(buf, static_cast<std::size_t>(n));
  }
  if (got != want) error = fmt::format("read '{}', expected '{}'", got, want);
  return got == want;
}

inline SideOutcome run_side(SSL* ssl, int fd, bool is_client) {
  SideOutcome out;
  const int ret = SSL_do_handshake(ssl);
  if (ret == 1) {
    out.handshake_ok = true;
    if (is_client) {
      out.exchange_ok = write_all(ssl, "ping", out.error) && read_exact(ssl, "pong", out.error);
    } else {
      out.exchange_ok = read_exact(ssl, "ping", out.error) && write_all(ssl, "pong", out.error);
    }
  } else {
    out.error = ssl_failure(ssl, "SSL_do_handshake", ret);
  }
  out.reason = verify_failure(ssl);
  ::shutdown(fd, SHUT_WR);
  return out;
}

inline void set_timeouts(int fd) {
  timeval tv{};
  tv.tv_sec = 10;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace detail

inline HandshakeOutcome drive_handshake(SSL* client, SSL* server) {
  ::signal(SIGPIPE, SIG_IGN);
  HandshakeOutcome out;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
    out.client.error = out.server.error = fmt::format("socketpair: {}", std::strerror(errno));
    return out;
  }
  detail::set_timeouts(fds[0]);
  detail::set_timeouts(fds[1]);
  if (!SSL_set_fd(client, fds[0]) || !SSL_set_fd(server, fds[1])) {
    out.client.error = out.server.error = "SSL_set_fd: " + drain_ssl_errors();
  } else {
    std::thread server_thread([&] { out.server = detail::run_side(server, fds[1], false); });
    out.client = detail::run_side(client, fds[0], true);
    server_thread.join();
  }
  ::close(fds[0]);
  ::close(fds[1]);
  return out;
}

}  // namespace ambient::tls::testing
