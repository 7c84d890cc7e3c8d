#pragma once
// CertifiedKey: one workload identity's private key, its certificate chain and the trust roots that came
// with it (ztunnel's WorkloadCertificate). The roots are what peers are verified against: ztunnel trusts
// the roots delivered with its *own* certificate (last element of IstioCertificateResponse.cert_chain).
//
// Invariants after from_pem / from_ca_response: key is the private half of chain[0]; chain is non-empty,
// leaf first, then intermediates up to (not including) a root; roots is non-empty.
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/base/result.h"
#include "common/tls/pki.h"
#include "common/tls/spiffe.h"

namespace ambient::tls {

struct CertifiedKey {
  bssl::UniquePtr<EVP_PKEY> key;
  X509Chain chain;  // leaf first, then intermediates
  X509Chain roots;  // trust anchors for verifying peers

  // chain_pem: leaf then intermediates, concatenated; roots_pem: one or more roots, concatenated.
  static Result<CertifiedKey> from_pem(std::string_view key_pem, std::string_view chain_pem,
                                       std::string_view roots_pem);
  // The shape of IstioCertificateResponse.cert_chain: element 0 the leaf, then intermediates, the last
  // element the root(s) (possibly several PEMs in one string). At least two elements.
  static Result<CertifiedKey> from_ca_response(std::string_view key_pem, const std::vector<std::string>& cert_chain);

  X509* leaf() const { return chain.empty() ? nullptr : chain.front().get(); }
  // First URI SAN of the leaf that parses as a SPIFFE id.
  Result<SpiffeId> identity() const;
  Result<SystemTime> not_before() const;
  Result<SystemTime> not_after() const;
  // New references to the same key and certificates (cheap; for handing a copy to another owner).
  CertifiedKey share() const;
  // Leaf then intermediates, concatenated PEM (for config dumps and files).
  Result<std::string> chain_pem() const;
  Result<std::string> roots_pem() const;
};

}  // namespace ambient::tls
