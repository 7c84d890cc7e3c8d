#pragma once
// A hostile meshed workload: mTLS to an HBONE port (ztunnel's or the waypoint's 15008) with a client
// certificate of the mesh, then raw HTTP/2 frames (h2_frames.h) until the server closes the connection.
#include <chrono>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/net/tcp_stream.h"
#include "common/tls/ca.h"
#include "common/tls/tls_context.h"
#include "common/tls/tls_stream.h"
#include "test/support/h2_frames.h"

namespace ambient::test {

// A client context for `id` with a certificate from the mesh CA in `cacerts_dir` (istiod-style cacerts).
inline bssl::UniquePtr<SSL_CTX> mesh_client_context(const std::string& cacerts_dir, const tls::SpiffeId& id) {
  auto ca = tls::CertificateAuthority::load_cacerts_dir(cacerts_dir);
  REQUIRE(ca);
  auto key = ca->issue(id, std::chrono::hours(1));
  REQUIRE(key);
  auto ctx = tls::make_client_context(*key);
  REQUIRE(ctx);
  return std::move(*ctx);
}

// Connects to `to`, completes mTLS expecting the server's `server_san`, then h2frames::attack with `bytes`.
inline boost::asio::awaitable<h2frames::AttackResult> attack_hbone(boost::asio::ip::tcp::endpoint to, SSL_CTX* ctx,
                                                                   std::string server_san, std::string bytes,
                                                                   std::chrono::milliseconds limit) {
  auto tcp = co_await net::connect(to, std::chrono::seconds(5));
  REQUIRE(tcp);
  auto ssl = tls::new_client_ssl(ctx, std::vector<std::string>(1, server_san));
  REQUIRE(ssl);
  tls::TlsStream stream(std::move(tcp->socket()), std::move(*ssl));
  REQUIRE(co_await stream.handshake(std::chrono::seconds(5)));
  co_return co_await h2frames::attack(stream, std::move(bytes), limit);
}

}  // namespace ambient::test
