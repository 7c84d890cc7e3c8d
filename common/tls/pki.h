#pragma once
// PKI building blocks over BoringSSL: keys, PEM, CSRs, certificate building and inspection.
//
// Ownership: every handle returned is a bssl::UniquePtr; parameters are borrowed. Functions that take a
// non-const EVP_PKEY*/X509* do so only because the BoringSSL call underneath is not const-correct; they
// never modify the object (except X509 extension caches, which BoringSSL fills lazily).
// Errors: ErrorKind::InvalidArgument for input we refuse (bad PEM, wrong shape), ErrorKind::Certificate
// for a crypto operation that failed; the BoringSSL error queue is drained into Error::context.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/base/result.h"
#include "common/tls/spiffe.h"

namespace ambient::tls {

using X509Chain = std::vector<bssl::UniquePtr<X509>>;
using SystemTime = std::chrono::system_clock::time_point;

// ---- errors ---------------------------------------------------------------------------------------------

// Pops every entry of this thread's BoringSSL error queue, joined by "; " ("" when empty).
std::string drain_ssl_errors();
// An Error whose context is `what` followed by the drained queue ("what: lib:reason; ...").
Error ssl_error(ErrorKind kind, std::string_view what);

// ---- keys -----------------------------------------------------------------------------------------------

// A fresh ECDSA P-256 key (what ztunnel and istio-agent generate for workload certificates).
Result<bssl::UniquePtr<EVP_PKEY>> generate_p256_key();
// Accepts "PRIVATE KEY" (PKCS#8), "EC PRIVATE KEY" (SEC1) and "RSA PRIVATE KEY" PEM; unencrypted only.
Result<bssl::UniquePtr<EVP_PKEY>> private_key_from_pem(std::string_view pem);
// PKCS#8 "PRIVATE KEY" PEM, unencrypted (the form ztunnel and Istio exchange).
Result<std::string> private_key_to_pem(EVP_PKEY* key);
// SEC1 "EC PRIVATE KEY" PEM; InvalidArgument if the key is not EC.
Result<std::string> ec_private_key_to_pem(EVP_PKEY* key);
// True if `key` is the private half of the certificate's public key.
bool key_matches_certificate(X509* cert, const EVP_PKEY* key);

// ---- certificates and PEM -------------------------------------------------------------------------------

// All CERTIFICATE blocks in `pem`, in order. Refuses input with no certificate, other PEM block types
// between certificates, or bytes that are not PEM.
Result<X509Chain> certificates_from_pem(std::string_view pem);
// Exactly one CERTIFICATE block.
Result<bssl::UniquePtr<X509>> certificate_from_pem(std::string_view pem);
Result<std::string> certificate_to_pem(X509* cert);
// Concatenation of certificate_to_pem for each, in order.
Result<std::string> certificates_to_pem(const X509Chain& chain);
// New references to the same certificates (bssl::UpRef), for sharing between owners.
X509Chain share(const X509Chain& chain);

// ---- CSRs -----------------------------------------------------------------------------------------------

// A PKCS#10 CSR as ztunnel sends it: empty subject, one extensionRequest with a critical subjectAltName
// holding exactly one URI (the SPIFFE id), signed with SHA-256 by `key`. PEM "CERTIFICATE REQUEST".
Result<std::string> make_csr_pem(EVP_PKEY* key, const SpiffeId& id);

struct VerifiedCsr {
  bssl::UniquePtr<EVP_PKEY> public_key;  // the key the certificate will certify
  std::string uri_san;                   // the single URI SAN, as written (not parsed as SPIFFE here)
};
// Parses and checks the signature. Refuses CSRs whose SAN is missing, holds more than one name, or holds
// a name that is not a URI.
Result<VerifiedCsr> verify_csr_pem(std::string_view pem);

// ---- building certificates ------------------------------------------------------------------------------

// What sign_certificate writes. Always: v3, random positive 128-bit serial, SHA-256 signature (ECDSA or
// RSA PKCS#1 by the issuer's key), subjectKeyIdentifier, and authorityKeyIdentifier when the issuer is
// another certificate that has a subjectKeyIdentifier.
struct CertificateSpec {
  std::string organization;           // subject O=; empty gives an empty subject
  bool is_ca = false;                 // CA: basicConstraints CA:TRUE + keyUsage keyCertSign|cRLSign
                                      // leaf: basicConstraints CA:FALSE + keyUsage digitalSignature|keyEncipherment
  std::vector<std::string> uri_sans;  // subjectAltName URIs; critical when the subject is empty (RFC 5280 4.2.1.6)
  bool server_auth = true;            // leaf only: extendedKeyUsage serverAuth
  bool client_auth = true;            // leaf only: extendedKeyUsage clientAuth
  SystemTime not_before;
  SystemTime not_after;
};
// Signs a certificate for `subject_key` (its public half is certified). `issuer`/`issuer_key` null means
// self-signed by `subject_key`; the issuer's subject becomes the certificate's issuer name.
Result<bssl::UniquePtr<X509>> sign_certificate(const CertificateSpec& spec, EVP_PKEY* subject_key, X509* issuer,
                                               EVP_PKEY* issuer_key);

// ---- inspection -----------------------------------------------------------------------------------------

// Verifies `leaf` up to one of `roots` with X509_verify_cert, using `intermediates` as untrusted
// candidates, at time `at` (now when absent). `purpose` is an X509_PURPOSE_* value; 0 checks none.
// The error (ErrorKind::Certificate) holds BoringSSL's reason and the failing depth.
Result<void> verify_chain(X509* leaf, const X509Chain& intermediates, const X509Chain& roots,
                          std::optional<SystemTime> at = std::nullopt, int purpose = 0);

// Every URI entry of the subjectAltName extension, in order ({} when absent or undecodable).
std::vector<std::string> uri_sans(const X509* cert);
// First URI SAN that parses as a SPIFFE id (ztunnel's rule for the peer identity).
std::optional<SpiffeId> spiffe_identity(const X509* cert);
Result<SystemTime> not_before(const X509* cert);
Result<SystemTime> not_after(const X509* cert);
// Lower-case hex without leading zeros ("0" for zero), as BN_bn2hex prints it.
std::string serial_hex(const X509* cert);
// basicConstraints CA:TRUE and, when keyUsage is present, keyCertSign.
bool is_ca_certificate(X509* cert);
// Subject and issuer are the same name and the certificate's own key verifies its signature.
bool is_self_signed(X509* cert);

}  // namespace ambient::tls
