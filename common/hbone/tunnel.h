#pragma once
// HBONE connection endpoints: mutual TLS 1.3 (SPIFFE identities, ALPN h2) carrying an HTTP/2 session whose
// CONNECT streams are the tunnels (reference ztunnel.md 3.1-3.4).
//
//   dial():             TCP connect → TLS client handshake (peer must hold one of `expected_sans`) →
//                       HTTP/2 client session, already running on the caller's executor.
//   serve_connection(): TLS server handshake (client certificate required, same trust domain) → HTTP/2
//                       server session; each request stream goes to `handler` with the peer's identity.
// Failures name the peer address and the check that failed, and are logged once at info by the caller.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <openssl/ssl.h>

#include "common/base/result.h"
#include "common/h2/session.h"
#include "common/net/tcp_stream.h"
#include "common/tls/spiffe.h"

namespace ambient::hbone {

inline constexpr std::uint16_t kHbonePort = 15008;

struct DialOptions {
  DialOptions() = default;  // user-declared: GCC 12 mis-copies aggregates built inside co_await
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds handshake_timeout{10'000};
  h2::Settings h2;
  // Makes the TCP socket (e.g. inside a pod's netns, marked). Empty: a plain socket in our own netns.
  std::function<Result<boost::asio::ip::tcp::socket>(const boost::asio::ip::tcp&)> make_socket;
};

// The client side of one HBONE connection. The session's run() is spawned on the caller's executor; the
// session ends when GOAWAY/EOF/keepalive ends it, or when the caller calls shutdown()/terminate().
boost::asio::awaitable<Result<std::shared_ptr<h2::Session>>> dial(boost::asio::ip::tcp::endpoint to, SSL_CTX* client_ctx,
                                                                  std::vector<std::string> expected_sans,
                                                                  DialOptions options = {});

// Who is on the other end of an inbound HBONE connection.
struct PeerInfo {
  tls::SpiffeId identity;     // from the client certificate's URI SAN
  std::string address;        // "ip:port"
};
using StreamHandler = std::function<boost::asio::awaitable<void>(std::shared_ptr<const PeerInfo>, std::shared_ptr<h2::Stream>)>;

struct ServeOptions {
  ServeOptions() = default;  // user-declared: GCC 12 mis-copies aggregates built inside co_await
  std::chrono::milliseconds handshake_timeout{10'000};
  // Called once the HTTP/2 session exists (after the handshake), e.g. so a drain can send it GOAWAY.
  std::function<void(const std::shared_ptr<h2::Session>&)> on_session;
  h2::Settings h2 = [] {
    h2::Settings s;
    s.max_concurrent_streams = 200;  // ztunnel's server advertises 200
    return s;
  }();
};

// Runs one inbound connection to its end. Returns the handshake or session error, if any.
boost::asio::awaitable<Result<void>> serve_connection(net::TcpStream connection, SSL_CTX* server_ctx, StreamHandler handler,
                                                      ServeOptions options = {});

}  // namespace ambient::hbone
