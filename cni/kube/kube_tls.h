#pragma once
// TLS to the Kubernetes API server over BoringSSL, with Kubernetes' policy rather than HBONE's
// (common/tls/tls_context.h is HBONE's: TLS 1.3 only, ALPN h2, SPIFFE SANs):
//   - TLS 1.2 or 1.3;
//   - the server chain must verify to the roots in the CA file (the service account's ca.crt), and the leaf
//     must carry the expected name: an IP literal is checked against IP SANs, a DNS name against DNS SANs
//     (BoringSSL's X509_VERIFY_PARAM host/IP checks) and is also sent as SNI;
//   - ALPN offers http/1.1 only (watches are long HTTP/1.1 responses, one per connection);
//   - no client certificate (the bearer token authenticates).
// The CA file is read at every new connection, so a rotated ca.crt is picked up without a restart.
#include <chrono>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <openssl/ssl.h>

#include "common/base/result.h"
#include "common/tls/tls_stream.h"

namespace ambient::cni::kube {

// A CA file larger than this is refused (a bundle of a few roots is a few KiB).
inline constexpr std::size_t kMaxCaFileBytes = 1024 * 1024;

// Errors name the file: InvalidArgument when it is unreadable, too large or holds no certificate.
Result<bssl::UniquePtr<SSL_CTX>> make_api_client_context(const std::string& ca_file);

// One client connection that verifies `verified_name` (an IP literal or a DNS name).
Result<bssl::UniquePtr<SSL>> new_api_client_ssl(SSL_CTX* ctx, const std::string& verified_name);

// SSL_do_handshake on `stream` (client or server, as the SSL was set up) with readiness waits, within
// `timeout`. Errors: TlsHandshake naming `peer` and the reason (the chain verification result such as
// "unable to get local issuer certificate" or "Hostname mismatch", or the alert), Timeout, Cancelled.
// The socket is closed on failure.
boost::asio::awaitable<Result<void>> run_handshake(tls::TlsStream& stream, std::chrono::milliseconds timeout,
                                                   std::string peer);

}  // namespace ambient::cni::kube
