#pragma once
// Test helpers for TLS tests: unwrap Results, mint odd certificates that CertificateAuthority never issues
// (wrong EKU, hand-made intermediates), and a temporary directory for PEM files.
#include "test/support/temp_dir.h"
#include <doctest/doctest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/base/result.h"
#include "common/tls/certified_key.h"
#include "common/tls/pki.h"

namespace ambient::tls::testing {

// The value of `r`; fails the current test with the error message otherwise.
template <typename T>
T must(Result<T> r) {
  REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
  return std::move(r).value();
}

inline void must(Result<void> r) { REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message())); }

// A signing key and its certificate, built with pki calls only.
struct RawCa {
  bssl::UniquePtr<EVP_PKEY> key;
  bssl::UniquePtr<X509> cert;
};

inline CertificateSpec ca_spec(std::string organization, std::chrono::hours ttl = std::chrono::hours(24)) {
  const auto now = std::chrono::system_clock::now();
  CertificateSpec spec;
  spec.organization = std::move(organization);
  spec.is_ca = true;
  spec.not_before = now - std::chrono::minutes(1);
  spec.not_after = now + ttl;
  return spec;
}

// Self-signed when `parent` is null.
inline RawCa make_raw_ca(std::string organization, const RawCa* parent = nullptr) {
  RawCa ca;
  ca.key = must(generate_p256_key());
  ca.cert = must(sign_certificate(ca_spec(std::move(organization)), ca.key.get(),
                                  parent ? parent->cert.get() : nullptr, parent ? parent->key.get() : nullptr));
  return ca;
}

// A leaf for `uri` signed by `issuer`, with `intermediates` after it in the chain and `roots` as trust.
inline CertifiedKey make_leaf(const RawCa& issuer, const std::string& uri, bool server_auth, bool client_auth,
                              const X509Chain& intermediates, const X509Chain& roots) {
  const auto now = std::chrono::system_clock::now();
  CertificateSpec spec;
  spec.uri_sans = {uri};
  spec.server_auth = server_auth;
  spec.client_auth = client_auth;
  spec.not_before = now - std::chrono::minutes(1);
  spec.not_after = now + std::chrono::hours(1);
  CertifiedKey out;
  out.key = must(generate_p256_key());
  out.chain.push_back(must(sign_certificate(spec, out.key.get(), issuer.cert.get(), issuer.key.get())));
  for (auto& c : share(intermediates)) out.chain.push_back(std::move(c));
  out.roots = share(roots);
  return out;
}

inline X509Chain chain_of(const bssl::UniquePtr<X509>& cert) {
  X509Chain out;
  out.push_back(bssl::UpRef(cert));
  return out;
}

using TempDir = ambient::test::TempDir;  // test/support/temp_dir.h

}  // namespace ambient::tls::testing
