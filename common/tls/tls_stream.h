#pragma once
// TlsStream: BoringSSL driven directly on a non-blocking TCP socket (BIOs on its fd: read-ahead recv, send
// with MSG_NOSIGNAL), with Asio readiness waits. No memory BIOs, so no extra copy between the kernel and the
// record layer, and a write to a connection that is gone is an error (EPIPE), never a SIGPIPE.
//
// Handshake policy is in the SSL_CTX (tls_context.h): TLS 1.3 only, AES-GCM, ALPN h2, no SNI, no
// resumption, peer verification. handshake() additionally requires that ALPN "h2" was negotiated.
// A ByteStream (common/net/byte_stream.h): one reader and one writer may run concurrently.
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <openssl/ssl.h>

#include "common/base/result.h"
#include "common/tls/spiffe.h"

namespace ambient::tls {

class TlsStream {
 public:
  TlsStream(boost::asio::ip::tcp::socket socket, bssl::UniquePtr<SSL> ssl);
  TlsStream(TlsStream&&) noexcept = default;
  TlsStream& operator=(TlsStream&&) noexcept = default;
  ~TlsStream();

  // Runs the handshake (client or server according to the SSL). On failure the error names the peer
  // address and the check that failed (chain, SAN, trust domain, version, ALPN), the socket is closed.
  boost::asio::awaitable<Result<void>> handshake(std::chrono::milliseconds timeout);

  boost::asio::awaitable<Result<std::size_t>> read_some(std::span<std::uint8_t> buf);
  boost::asio::awaitable<Result<void>> write_all(std::span<const std::uint8_t> buf);
  // Sends TCP FIN after flushing; no close_notify (HBONE peers treat FIN as end of connection).
  boost::asio::awaitable<Result<void>> shutdown_write();
  void close() noexcept;

  // Valid after a successful handshake.
  std::optional<SpiffeId> peer_identity() const;  // first parseable URI SAN of the peer leaf
  std::string peer_address() const;               // "ip:port" of the TCP peer, for logs
  SSL* ssl() const noexcept { return ssl_.get(); }
  boost::asio::ip::tcp::socket& socket() noexcept { return socket_; }
  boost::asio::any_io_executor get_executor() { return socket_.get_executor(); }

 private:
  // Waits until the socket is ready for what SSL asked for (WANT_READ / WANT_WRITE).
  boost::asio::awaitable<Result<void>> wait_for(int ssl_error);
  Result<void> fail(const char* op, int ret);

  boost::asio::ip::tcp::socket socket_;
  bssl::UniquePtr<SSL> ssl_;
  std::string peer_;  // cached "ip:port"
};

}  // namespace ambient::tls
