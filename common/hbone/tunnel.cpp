#include "common/hbone/tunnel.h"

#include <algorithm>
#include <chrono>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <spdlog/spdlog.h>

#include "common/net/endpoint.h"
#include "common/tls/pki.h"
#include "common/tls/tls_context.h"
#include "common/tls/tls_stream.h"

namespace ambient::hbone {

namespace asio = boost::asio;

using net::format_endpoint;

namespace {

// The earlier notAfter of our certificate and the peer's on a finished handshake (the end of time if
// neither can be read: the handshake already verified both).
std::chrono::system_clock::time_point credentials_expiry(SSL* ssl) {
  auto at = std::chrono::system_clock::time_point::max();
  auto earlier = [&at](const X509* cert) {
    if (cert == nullptr) return;
    if (auto t = tls::not_after(cert)) at = std::min(at, *t);
  };
  earlier(SSL_get_certificate(ssl));
  bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(ssl));
  earlier(peer.get());
  return at;
}

}  // namespace

asio::awaitable<Result<std::shared_ptr<h2::Session>>> dial(asio::ip::tcp::endpoint to, SSL_CTX* client_ctx,
                                                           std::vector<std::string> expected_sans, DialOptions options) {
  Result<net::TcpStream> tcp = make_error(ErrorKind::Internal, "unset");
  if (options.make_socket) {
    auto sock = options.make_socket(to.protocol());
    if (!sock) co_return std::move(sock).error();
    tcp = co_await net::connect(std::move(*sock), to, options.connect_timeout);
  } else {
    tcp = co_await net::connect(to, options.connect_timeout);
  }
  if (!tcp) {
    Error e = std::move(tcp).error();
    if (e.kind == ErrorKind::Timeout)
      e.context += " (connection timed out, maybe a NetworkPolicy is blocking HBONE port 15008)";
    co_return e;
  }
  auto ssl = tls::new_client_ssl(client_ctx, std::move(expected_sans));
  if (!ssl) co_return std::move(ssl).error();
  tls::TlsStream stream(std::move(tcp->socket()), std::move(*ssl));
  auto hs = co_await stream.handshake(options.handshake_timeout);
  if (!hs) co_return std::move(hs).error();
  const auto expiry = credentials_expiry(stream.ssl());
  auto ex = co_await asio::this_coro::executor;
  auto session = h2::Session::client(ex, h2::make_transport(std::move(stream)), options.h2, format_endpoint(to));
  if (!session) co_return std::move(session).error();
  (*session)->set_credentials_expiry(expiry);
  asio::co_spawn(ex, [s = *session]() -> asio::awaitable<void> {
        auto r = co_await s->run();
        if (!r) spdlog::debug("hbone: connection to {} ended: {}", s->peer(), r.error());
      }, asio::detached);
  co_return *session;
}

asio::awaitable<Result<void>> serve_connection(net::TcpStream connection, SSL_CTX* server_ctx, StreamHandler handler,
                                               ServeOptions options) {
  const std::string address = format_endpoint(connection.peer());
  auto ssl = tls::new_server_ssl(server_ctx);
  if (!ssl) co_return std::move(ssl).error();
  tls::TlsStream stream(std::move(connection.socket()), std::move(*ssl));
  auto hs = co_await stream.handshake(options.handshake_timeout);
  if (!hs) co_return std::move(hs).error();
  auto id = stream.peer_identity();
  if (!id) co_return errorf(ErrorKind::PeerIdentity, "HBONE peer {} presented no SPIFFE identity", address);
  auto peer = std::make_shared<const PeerInfo>(PeerInfo{*id, address});
  auto ex = co_await asio::this_coro::executor;
  auto session = h2::Session::server(
      ex, h2::make_transport(std::move(stream)), options.h2,
      [peer, handler = std::move(handler)](std::shared_ptr<h2::Stream> s) { return handler(peer, std::move(s)); },
      address);
  if (!session) co_return std::move(session).error();
  if (options.on_session) options.on_session(*session);
  co_return co_await (*session)->run();
}

}  // namespace ambient::hbone
