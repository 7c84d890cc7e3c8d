#pragma once
// dial(): one HTTP/2 connection to a gRPC server, ready for grpc::start_call / grpc::unary.
//
// TLS (ChannelTls given): TCP connect, TLS handshake verifying `server_name`, ALPN h2. Plaintext
// otherwise: HTTP/2 with prior knowledge (h2c), for tests and local control planes.
// The session's peer() is "<server_name>:<port>" (or "<ip>:<port>" without a name), which
// CallOptions uses as :authority when none is given, as gRPC clients do with their target.
//
// Lifetime: the session's run() is co_spawned on the calling coroutine's executor and ends when the
// server closes the connection, on a connection error or keepalive timeout, or after
// session->shutdown() (GOAWAY, then close once the calls in flight end). Check alive() before reuse.
#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"
#include "common/grpc/channel_tls.h"
#include "common/h2/session.h"
#include "common/h2/settings.h"

namespace ambient::grpc {

struct DialOptions {
  DialOptions() = default;  // not an aggregate: see CallOptions (GCC 12 and aggregate temporaries in co_await)

  std::chrono::milliseconds connect_timeout{5000};  // bounds the TCP connect and the TLS handshake, each
  h2::Settings settings;                            // windows, frame size, keepalive PING
};

// Not a coroutine itself: with TLS the SSL is made before it returns, so `tls` need not outlive the
// returned awaitable. An empty `server_name` with TLS is refused (InvalidArgument).
boost::asio::awaitable<Result<std::shared_ptr<h2::Session>>> dial(boost::asio::ip::tcp::endpoint endpoint,
                                                                  const ChannelTls* tls, std::string server_name,
                                                                  DialOptions options = {});

}  // namespace ambient::grpc
