#pragma once
// ChannelTls: the client TLS policy for gRPC to a control plane (istiod's XDS_ADDRESS / CA_ADDRESS),
// as opposed to HBONE's SPIFFE mTLS (common/tls/tls_context.h):
//   - The server is verified like any HTTPS server: its chain must verify to the configured roots
//     (XDS_ROOT_CA / CA_ROOT_CA, e.g. /var/run/secrets/istio/root-cert.pem) with EKU serverAuth, and its
//     leaf must carry the expected server name as a DNS SAN (wildcards allowed, no partial ones) or, for
//     an IP literal, as an IP SAN. A DNS name is also sent as SNI; an IP literal is not (RFC 6066).
//   - ALPN: exactly "h2" (gRPC requires HTTP/2); TLS 1.2 or 1.3 in the SSL_CTX.
//     Note: tls::TlsStream::handshake() currently accepts only TLS 1.3, which every istiod and grpc++
//     server offers.
//   - Optional client certificate (mTLS to the control plane); istiod authenticates ztunnel with a JWT
//     bearer token instead, so this is usually unset.
//
// Threads: build one ChannelTls per control-plane address on the control thread; new_ssl() is const and
// may run on any thread (the SSL_CTX is read-only after create()).
#include <chrono>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <openssl/ssl.h>

#include "common/base/result.h"
#include "common/tls/tls_stream.h"

namespace ambient::grpc {

struct ChannelTlsOptions {
  std::string roots_pem;          // trust anchors for the server chain (one or more CERTIFICATE blocks)
  std::string client_chain_pem;   // optional: our certificate, leaf first, then intermediates
  std::string client_key_pem;     // optional: its private key (required with client_chain_pem)
};

class ChannelTls {
 public:
  // InvalidArgument for unparsable PEM, a key that does not match the certificate, no roots, or a
  // certificate without its key (or the reverse).
  static Result<ChannelTls> create(const ChannelTlsOptions& options);
  // Reads roots (and, when the paths are non-empty, the client chain and key) from PEM files.
  static Result<ChannelTls> from_files(const std::string& roots_path, const std::string& client_chain_path = {},
                                       const std::string& client_key_path = {});

  // A client SSL that verifies the server as `server_name`: a DNS name ("istiod.istio-system.svc") or
  // an IP literal ("10.0.0.1", "::1" or "[::1]"). Empty names are refused (no unverified connections).
  Result<bssl::UniquePtr<SSL>> new_ssl(std::string_view server_name) const;

  SSL_CTX* ctx() const noexcept { return ctx_.get(); }

 private:
  explicit ChannelTls(bssl::UniquePtr<SSL_CTX> ctx) : ctx_(std::move(ctx)) {}
  bssl::UniquePtr<SSL_CTX> ctx_;
};

// TCP connect to `endpoint`, then the TLS handshake verifying `server_name`; `timeout` bounds each
// step. A failed verification is TlsHandshake with BoringSSL's reason and the X.509 verify result
// ("certificate verify failed: unable to get local issuer certificate; expected server name ...").
boost::asio::awaitable<Result<tls::TlsStream>> connect_tls(const ChannelTls& tls, boost::asio::ip::tcp::endpoint endpoint,
                                                           std::string server_name, std::chrono::milliseconds timeout);

}  // namespace ambient::grpc
