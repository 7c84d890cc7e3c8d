#pragma once
// CertificateAuthority: signs workload certificates the way istiod's CA does. Used as the built-in CA of the
// embedded default (no cluster) and by fake-istiod behind IstioCertificateService/CreateCertificate.
//
// Signing key material is either a fresh self-signed P-256 root or istiod's plugged-in `cacerts` files:
//   ca-cert.pem     the signing certificate (a CA)          ca-key.pem      its private key
//   cert-chain.pem  optional: ca-cert up to the root        root-cert.pem   optional: the root(s)
//
// Issued leaves (what ztunnel expects): empty subject; critical subjectAltName = the SPIFFE URI;
// basicConstraints CA:FALSE; keyUsage digitalSignature|keyEncipherment; extendedKeyUsage
// serverAuth+clientAuth; random 128-bit serial; notBefore = now - 1 minute (clock skew between nodes);
// notAfter = now + ttl, clamped to the signing certificate's notAfter; AKID/SKID; SHA-256.
//
// Thread safety: const member functions may run concurrently (they only read the CA's key and certificates;
// each signature builds its own objects); set_clock must not race with them.
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/base/result.h"
#include "common/tls/certified_key.h"
#include "common/tls/pki.h"
#include "common/tls/spiffe.h"

namespace ambient::tls {

class CertificateAuthority {
 public:
  using Clock = std::function<SystemTime()>;

  // How far notBefore is moved into the past, so a peer whose clock lags a little accepts the certificate.
  static constexpr std::chrono::seconds kBackdate{60};

  // A new P-256 root: subject O=<trust_domain>, CA:TRUE, keyUsage keyCertSign|cRLSign, valid from now - 1
  // minute for `ttl`. The root is its own signing certificate; issued chains are [leaf, root].
  static Result<CertificateAuthority> create_self_signed(std::string_view trust_domain, std::chrono::seconds ttl);

  // Loads signing material from PEM files (see the header comment). Checks: the key matches the
  // certificate, the certificate is a CA (basicConstraints CA:TRUE, keyCertSign), and it verifies against
  // the roots. Roots come from root-cert.pem, else from the self-signed tail of cert-chain.pem, else
  // ca-cert.pem itself when it is self-signed. Empty paths mean "absent".
  static Result<CertificateAuthority> load(const std::string& cert_pem_path, const std::string& key_pem_path,
                                           const std::string& cert_chain_path = {},
                                           const std::string& root_cert_path = {});
  // load() with istiod's file names in `dir`; cert-chain.pem and root-cert.pem are used when present.
  static Result<CertificateAuthority> load_cacerts_dir(const std::string& dir);

  CertificateAuthority(CertificateAuthority&&) noexcept = default;
  CertificateAuthority& operator=(CertificateAuthority&&) noexcept = default;

  // Signs a PEM CSR; returns IstioCertificateResponse.cert_chain: [leaf, intermediates..., roots] where the
  // last element holds every root PEM concatenated. The CSR must carry exactly one URI SAN; it must equal
  // `requested` when given (impersonation: the caller asked for that identity), otherwise it must parse as a
  // SPIFFE id. ttl must be positive.
  Result<std::vector<std::string>> sign_csr(std::string_view csr_pem, const std::optional<SpiffeId>& requested,
                                            std::chrono::seconds ttl) const;

  // Generates a P-256 key and a CSR for `id`, signs it and returns the result, as ztunnel's CA client
  // would hold it. For the built-in CA and tests.
  Result<CertifiedKey> issue(const SpiffeId& id, std::chrono::seconds ttl) const;

  // Every root, concatenated PEM (the ROOT_CA / root-cert.pem content peers need).
  const std::string& root_pem() const { return roots_pem_; }
  const X509Chain& roots() const { return roots_; }
  X509* signing_certificate() const { return cert_.get(); }

  // Replaces "now" for issued validity periods (tests: backdated or already expired certificates).
  void set_clock(Clock clock) { clock_ = std::move(clock); }

 private:
  CertificateAuthority(bssl::UniquePtr<X509> cert, bssl::UniquePtr<EVP_PKEY> key, X509Chain chain, X509Chain roots,
                       std::string roots_pem);

  bssl::UniquePtr<X509> cert_;     // signs leaves
  bssl::UniquePtr<EVP_PKEY> key_;  // private key of cert_
  X509Chain chain_;                // sent between leaf and roots: cert_ then intermediates; empty if cert_ is a root
  X509Chain roots_;                // non-empty
  std::vector<std::string> chain_pems_;  // chain_, one PEM per element (IstioCertificateResponse shape)
  std::string roots_pem_;
  Clock clock_ = [] { return std::chrono::system_clock::now(); };
};

}  // namespace ambient::tls
