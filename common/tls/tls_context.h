#pragma once
// SSL_CTX / SSL factories for HBONE mTLS with ztunnel's policy (reference/ztunnel.md 3.1):
//   - TLS 1.3 only (TlsOptions::allow_tls12 adds TLS 1.2 with ECDHE + AES-GCM suites, like TLS12_ENABLED).
//   - AES-GCM only. BoringSSL (Android 13 build, API 17) cannot configure TLS 1.3 suites: it always offers
//     AES-128-GCM, AES-256-GCM and CHACHA20-POLY1305, ChaCha20 first when the CPU has no AES instructions.
//     So the policy is enforced after selection: the server refuses a ChaCha20 negotiation in its ALPN
//     callback (the cipher is chosen before ALPN; the peer sees a no_application_protocol alert), the client
//     in its certificate callback (ServerHello precedes Certificate). Peers offering only AES-GCM (Rust
//     ztunnel) always negotiate AES-GCM; two of our peers on hosts without AES-NI cannot connect.
//   - ALPN: the client offers exactly "h2"; the server requires it: a ClientHello without ALPN is refused
//     (handshake_failure alert), one without "h2" gets no_application_protocol. The client also refuses a
//     server that does not select "h2".
//   - No SNI (the client never sets a server name), no session tickets, no session cache, no resumption.
//   - Verification: the chain must verify to the roots of our *own* CertifiedKey, with EKU serverAuth when
//     the client verifies a server and clientAuth when the server verifies a client. Then, on the leaf:
//       client: at least one URI SAN equals one of the expected SANs given to new_client_ssl;
//       server: a client certificate is required, and at least one URI SAN is a SPIFFE id whose trust domain
//               equals the trust domain of the server's own certificate (no per-identity check here: that
//               is authorization's job).
//
// Failure reasons: the first check that fails records a sentence for operators on the SSL
// (verify_failure()), e.g. "peer URI SAN spiffe://td/ns/a/sa/x is not one of the expected [...]",
// "certificate chain: certificate has expired (depth 0, spiffe://...)", "no client certificate",
// "trust domain evil.org != cluster.local", "ALPN: client offered [http/1.1]; h2 required". A side that only
// receives the other side's alert records "peer sent fatal alert: <description>".
//
// Threads: build each SSL_CTX once per identity (control thread) and share it read-only; SSL objects are
// per connection and belong to one worker.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>

#include "common/base/result.h"
#include "common/tls/certified_key.h"
#include "common/tls/spiffe.h"

namespace ambient::tls {

struct TlsOptions {
  bool allow_tls12 = false;  // TLS12_ENABLED: also accept TLS 1.2 (ECDHE-ECDSA/RSA with AES-GCM only)
};

// The ALPN protocol HBONE runs over.
inline constexpr std::string_view kAlpnH2 = "h2";

// Contexts hold new references to key.key, key.chain and key.roots; `key` may be destroyed afterwards.
// The server context derives its trust domain from key.identity() and fails if the leaf has none.
Result<bssl::UniquePtr<SSL_CTX>> make_client_context(const CertifiedKey& key, const TlsOptions& options = {});
Result<bssl::UniquePtr<SSL_CTX>> make_server_context(const CertifiedKey& key, const TlsOptions& options = {});

// One connection. `expected_sans` must be non-empty: the peer leaf must carry one of them exactly.
Result<bssl::UniquePtr<SSL>> new_client_ssl(SSL_CTX* client_ctx, std::vector<std::string> expected_sans);
Result<bssl::UniquePtr<SSL>> new_server_ssl(SSL_CTX* server_ctx);

// The first failure recorded on `ssl` during its handshake; "" when none was (success, or an SSL not made
// by new_*_ssl).
std::string verify_failure(const SSL* ssl);
// ErrorKind::PeerIdentity when that failure was an identity check (expected SAN, trust domain, no SPIFFE
// SAN): the TLS itself was fine but the peer is not one we accept. ErrorKind::TlsHandshake otherwise.
ErrorKind verify_failure_kind(const SSL* ssl);
// Valid after the handshake: first URI SAN of the peer leaf that parses as a SPIFFE id.
std::optional<SpiffeId> peer_identity(const SSL* ssl);
// Negotiated ALPN protocol ("" when none).
std::string_view negotiated_alpn(const SSL* ssl);
// The cipher policy: AES-128-GCM or AES-256-GCM (any TLS version).
bool is_allowed_cipher(const SSL_CIPHER* cipher);

}  // namespace ambient::tls
