#include "common/tls/tls_context.h"

#include <algorithm>
#include <memory>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/nid.h>
#include <openssl/x509v3.h>

#include "common/tls/pki.h"

namespace ambient::tls {
namespace {

// TLS 1.2 suites when TlsOptions::allow_tls12 (ztunnel's TLS12_ENABLED set). Has no effect on TLS 1.3.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384";

// ALPN wire format: length-prefixed "h2".
constexpr uint8_t kAlpnWire[] = {2, 'h', '2'};

// ---- ex_data ----------------------------------------------------------------------------------------------

// Per-connection state, owned by the SSL (freed by its ex_data free callback).
struct SslState {
  std::vector<std::string> expected_sans;  // client only; never empty on a client made by new_client_ssl
  std::string failure;                     // first failure reason; later ones are consequences
  ErrorKind failure_kind = ErrorKind::TlsHandshake;  // PeerIdentity for SAN / trust-domain refusals
};

// Per-context state, owned by the SSL_CTX.
struct ContextState {
  std::string trust_domain;  // server: the trust domain of our own certificate
};

void free_ssl_state(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<SslState*>(ptr); }
void free_context_state(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<ContextState*>(ptr);
}

int ssl_state_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_ssl_state);
  return index;
}

int context_state_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_context_state);
  return index;
}

SslState* state_of(const SSL* ssl) { return static_cast<SslState*>(SSL_get_ex_data(ssl, ssl_state_index())); }

const ContextState* context_state_of(const SSL* ssl) {
  return static_cast<const ContextState*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_state_index()));
}

Result<void> attach_state(SSL* ssl, std::vector<std::string> expected_sans) {
  auto state = std::make_unique<SslState>();
  state->expected_sans = std::move(expected_sans);
  if (!SSL_set_ex_data(ssl, ssl_state_index(), state.get())) return ssl_error(ErrorKind::Internal, "SSL_set_ex_data");
  state.release();  // owned by the SSL now
  return ok();
}

// Keeps the first reason: it is the cause, later failures (alerts) are its consequences.
void record_failure(const SSL* ssl, std::string reason, ErrorKind kind = ErrorKind::TlsHandshake) {
  SslState* state = state_of(ssl);
  if (!state || !state->failure.empty()) return;
  state->failure = std::move(reason);
  state->failure_kind = kind;
}

// Outcome of a leaf check: empty reason means accepted.
struct Verdict {
  std::string reason;
  ErrorKind kind = ErrorKind::TlsHandshake;
};

Verdict identity_refused(std::string reason) { return Verdict{std::move(reason), ErrorKind::PeerIdentity}; }

// ---- checks -----------------------------------------------------------------------------------------------

std::string cipher_name(const SSL_CIPHER* cipher) {
  const char* name = cipher ? SSL_CIPHER_standard_name(cipher) : nullptr;
  return name ? name : "(none)";
}

// Empty when allowed, else the reason.
std::string check_cipher(const SSL* ssl) {
  const SSL_CIPHER* cipher = SSL_get_pending_cipher(ssl);
  if (is_allowed_cipher(cipher)) return {};
  return fmt::format("cipher {} is not allowed (AES-GCM only)", cipher_name(cipher));
}

std::string describe_name(X509* cert) {
  const auto sans = uri_sans(cert);
  if (!sans.empty()) return sans.front();
  const X509_NAME* subject = X509_get_subject_name(cert);
  char buf[256];
  return X509_NAME_oneline(subject, buf, sizeof buf) ? std::string(buf) : std::string("?");
}

// Client, peer leaf verified: ALPN, cipher, then "one URI SAN is exactly one of the expected SANs".
Verdict check_server_leaf(const SSL* ssl, const X509* leaf) {
  if (negotiated_alpn(ssl) != kAlpnH2)
    return Verdict{fmt::format("ALPN: server selected '{}'; h2 required", negotiated_alpn(ssl))};
  if (auto bad_cipher = check_cipher(ssl); !bad_cipher.empty()) return Verdict{std::move(bad_cipher)};
  const SslState* state = state_of(ssl);
  if (!state || state->expected_sans.empty())
    return identity_refused("no expected SANs configured for this connection");
  const auto& expected = state->expected_sans;
  const auto sans = uri_sans(leaf);
  for (const auto& san : sans) {
    if (std::find(expected.begin(), expected.end(), san) != expected.end()) return {};
  }
  if (sans.empty())
    return identity_refused(
        fmt::format("peer certificate has no URI SAN; expected one of [{}]", fmt::join(expected, ", ")));
  if (sans.size() == 1)
    return identity_refused(
        fmt::format("peer URI SAN {} is not one of the expected [{}]", sans.front(), fmt::join(expected, ", ")));
  return identity_refused(fmt::format("peer URI SANs [{}] are not among the expected [{}]", fmt::join(sans, ", "),
                                      fmt::join(expected, ", ")));
}

// Server, peer leaf verified: one URI SAN is a SPIFFE id in our trust domain.
Verdict check_client_leaf(const SSL* ssl, const X509* leaf) {
  const ContextState* ctx_state = context_state_of(ssl);
  if (!ctx_state) return Verdict{"server context has no trust domain"};
  const auto sans = uri_sans(leaf);
  std::optional<SpiffeId> first_foreign;
  for (const auto& san : sans) {
    auto id = parse_spiffe(san);
    if (!id) continue;
    if (id->trust_domain == ctx_state->trust_domain) return {};
    if (!first_foreign) first_foreign = std::move(id).value();
  }
  if (first_foreign)
    return identity_refused(fmt::format("trust domain {} != {}", first_foreign->trust_domain, ctx_state->trust_domain));
  return identity_refused(
      fmt::format("client certificate has no SPIFFE URI SAN (URI SANs: [{}])", fmt::join(sans, ", ")));
}

// X509 verify callback: called with ok=0 for each chain error, and with ok=1 for each certificate from the
// root down to the leaf (depth 0) once the chain is built. Returning 0 aborts the handshake.
int verify_callback(int preverify_ok, X509_STORE_CTX* store) {
  const auto* ssl =
      static_cast<const SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (!ssl) return 0;
  const int depth = X509_STORE_CTX_get_error_depth(store);
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  if (!preverify_ok) {
    const int err = X509_STORE_CTX_get_error(store);
    record_failure(ssl, fmt::format("certificate chain: {} (depth {}, {})", X509_verify_cert_error_string(err), depth,
                                    cert ? describe_name(cert) : std::string("?")));
    return 0;
  }
  if (depth != 0 || !cert) return 1;
  Verdict verdict = SSL_is_server(ssl) ? check_client_leaf(ssl, cert) : check_server_leaf(ssl, cert);
  if (verdict.reason.empty()) return 1;
  record_failure(ssl, std::move(verdict.reason), verdict.kind);
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);  // handshake_failure alert
  return 0;
}

// Server: refuse ClientHellos without ALPN (the ALPN callback is not called for them).
ssl_select_cert_result_t select_certificate_callback(const SSL_CLIENT_HELLO* hello) {
  const uint8_t* data = nullptr;
  size_t len = 0;
  if (SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_application_layer_protocol_negotiation, &data, &len))
    return ssl_select_cert_success;
  record_failure(hello->ssl, "ALPN: client offered no protocols; h2 required");
  return ssl_select_cert_error;
}

// Server: select "h2" or fail with no_application_protocol. Runs after the cipher is chosen, so it also
// enforces the AES-GCM policy.
int alpn_select_callback(SSL* ssl, const uint8_t** out, uint8_t* out_len, const uint8_t* in, unsigned in_len,
                         void*) {
  if (auto bad_cipher = check_cipher(ssl); !bad_cipher.empty()) {
    record_failure(ssl, std::move(bad_cipher));
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  std::vector<std::string_view> offered;
  for (unsigned i = 0; i < in_len;) {
    const unsigned len = in[i];
    if (len == 0 || i + 1 + len > in_len) break;  // malformed list; BoringSSL validates it before us
    const std::string_view proto(reinterpret_cast<const char*>(in + i + 1), len);
    if (proto == kAlpnH2) {
      *out = in + i + 1;
      *out_len = static_cast<uint8_t>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    offered.push_back(proto);
    i += 1 + len;
  }
  record_failure(ssl, fmt::format("ALPN: client offered [{}]; h2 required", fmt::join(offered, ", ")));
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// Records alert-level failures that no callback explained (missing client certificate, version mismatch)
// and, on the side that receives the alert, what the peer said.
void info_callback(const SSL* ssl, int type, int value) {
  if (type != SSL_CB_WRITE_ALERT && type != SSL_CB_READ_ALERT) return;
  if ((value >> 8) != SSL3_AL_FATAL) return;  // close_notify and other warnings are not failures
  const int desc = value & 0xff;
  if (type == SSL_CB_READ_ALERT) {
    record_failure(ssl, fmt::format("peer sent fatal alert: {}", SSL_alert_desc_string_long(value)));
    return;
  }
  switch (desc) {
    case SSL_AD_CERTIFICATE_REQUIRED:
      record_failure(ssl, "no client certificate");
      break;
    case SSL_AD_PROTOCOL_VERSION:
      record_failure(ssl, "TLS version: no protocol version in common (TLS 1.3 required)");
      break;
    default:
      record_failure(ssl, fmt::format("sent fatal alert: {}", SSL_alert_desc_string_long(value)));
      break;
  }
}

// ---- contexts ---------------------------------------------------------------------------------------------

Result<bssl::UniquePtr<SSL_CTX>> base_context(const CertifiedKey& key, const TlsOptions& options) {
  if (!key.key || key.chain.empty() || key.roots.empty())
    return errorf(ErrorKind::InvalidArgument, "TLS context needs a key, a certificate chain and roots");
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) return ssl_error(ErrorKind::Internal, "SSL_CTX_new");
  if (!SSL_CTX_set_min_proto_version(ctx.get(), options.allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) ||
      !SSL_CTX_set_strict_cipher_list(ctx.get(), kTls12Ciphers))
    return ssl_error(ErrorKind::Internal, "TLS version/cipher configuration");
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);

  if (!SSL_CTX_use_certificate(ctx.get(), key.chain.front().get()))
    return ssl_error(ErrorKind::Certificate, "loading leaf certificate");
  for (std::size_t i = 1; i < key.chain.size(); ++i) {
    if (!SSL_CTX_add1_chain_cert(ctx.get(), key.chain[i].get()))
      return ssl_error(ErrorKind::Certificate, "loading intermediate certificate");
  }
  if (!SSL_CTX_use_PrivateKey(ctx.get(), key.key.get()) || !SSL_CTX_check_private_key(ctx.get()))
    return ssl_error(ErrorKind::Certificate, "private key does not match the leaf certificate");
  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
  for (const auto& root : key.roots) {
    if (!X509_STORE_add_cert(store, root.get())) return ssl_error(ErrorKind::Certificate, "adding root to store");
  }
  SSL_CTX_set_info_callback(ctx.get(), info_callback);
  return ctx;
}

}  // namespace

bool is_allowed_cipher(const SSL_CIPHER* cipher) {
  if (!cipher) return false;
  const int nid = SSL_CIPHER_get_cipher_nid(cipher);
  return nid == NID_aes_128_gcm || nid == NID_aes_256_gcm;
}

Result<bssl::UniquePtr<SSL_CTX>> make_client_context(const CertifiedKey& key, const TlsOptions& options) {
  auto ctx = base_context(key, options);
  if (!ctx) return ctx;
  SSL_CTX_set_verify(ctx->get(), SSL_VERIFY_PEER, verify_callback);
  if (!SSL_CTX_set_purpose(ctx->get(), X509_PURPOSE_SSL_SERVER))  // peer needs EKU serverAuth
    return ssl_error(ErrorKind::Internal, "SSL_CTX_set_purpose");
  return ctx;
}

Result<bssl::UniquePtr<SSL_CTX>> make_server_context(const CertifiedKey& key, const TlsOptions& options) {
  auto identity = key.identity();
  if (!identity)
    return errorf(ErrorKind::InvalidArgument, "server certificate: {} (needed for the trust domain)",
                  identity.error().context);
  auto ctx = base_context(key, options);
  if (!ctx) return ctx;
  SSL_CTX_set_verify(ctx->get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_callback);
  if (!SSL_CTX_set_purpose(ctx->get(), X509_PURPOSE_SSL_CLIENT))  // peer needs EKU clientAuth
    return ssl_error(ErrorKind::Internal, "SSL_CTX_set_purpose");
  SSL_CTX_set_select_certificate_cb(ctx->get(), select_certificate_callback);
  SSL_CTX_set_alpn_select_cb(ctx->get(), alpn_select_callback, nullptr);
  auto state = std::make_unique<ContextState>();
  state->trust_domain = identity->trust_domain;
  if (!SSL_CTX_set_ex_data(ctx->get(), context_state_index(), state.get()))
    return ssl_error(ErrorKind::Internal, "SSL_CTX_set_ex_data");
  state.release();  // owned by the SSL_CTX now
  return ctx;
}

Result<bssl::UniquePtr<SSL>> new_client_ssl(SSL_CTX* client_ctx, std::vector<std::string> expected_sans) {
  if (expected_sans.empty())
    return errorf(ErrorKind::InvalidArgument, "client TLS needs at least one expected peer SAN");
  bssl::UniquePtr<SSL> ssl(SSL_new(client_ctx));
  if (!ssl) return ssl_error(ErrorKind::Internal, "SSL_new");
  AMBIENT_TRY(attach_state(ssl.get(), std::move(expected_sans)));
  if (SSL_set_alpn_protos(ssl.get(), kAlpnWire, sizeof kAlpnWire) != 0)  // 0 is success here
    return ssl_error(ErrorKind::Internal, "SSL_set_alpn_protos");
  SSL_set_connect_state(ssl.get());  // no SSL_set_tlsext_host_name: HBONE sends no SNI
  return ssl;
}

Result<bssl::UniquePtr<SSL>> new_server_ssl(SSL_CTX* server_ctx) {
  bssl::UniquePtr<SSL> ssl(SSL_new(server_ctx));
  if (!ssl) return ssl_error(ErrorKind::Internal, "SSL_new");
  AMBIENT_TRY(attach_state(ssl.get(), {}));
  SSL_set_accept_state(ssl.get());
  return ssl;
}

std::string verify_failure(const SSL* ssl) {
  const SslState* state = state_of(ssl);
  return state ? state->failure : std::string();
}

ErrorKind verify_failure_kind(const SSL* ssl) {
  const SslState* state = state_of(ssl);
  return state && !state->failure.empty() ? state->failure_kind : ErrorKind::TlsHandshake;
}

std::optional<SpiffeId> peer_identity(const SSL* ssl) {
  bssl::UniquePtr<X509> leaf(SSL_get_peer_certificate(ssl));  // new reference
  if (!leaf) return std::nullopt;
  return spiffe_identity(leaf.get());
}

std::string_view negotiated_alpn(const SSL* ssl) {
  const uint8_t* data = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl, &data, &len);
  return len ? std::string_view(reinterpret_cast<const char*>(data), len) : std::string_view();
}

}  // namespace ambient::tls
