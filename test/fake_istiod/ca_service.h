#pragma once
// The Istio CA (istio.v1.auth.IstioCertificateService/CreateCertificate), signing with OpenSSL 3: this
// process links grpc++, hence OpenSSL, never BoringSSL (common/tls is not usable here).
//
// Request checks (reference ztunnel.md 5): the PEM CSR must parse and verify with its own key and carry
// exactly one subjectAltName, a URI; when metadata.ImpersonatedIdentity (a string) is present, the
// certificate is issued for it and the CSR's URI must equal it. validity_duration: seconds, 0 = 24 h,
// negative refused; capped by the cert-ttl-s fault.
//
// Leaf: v3, random positive 128-bit serial, empty subject, issuer = the CA's subject; critical SAN URI =
// the identity; basicConstraints CA:FALSE; keyUsage digitalSignature+keyEncipherment; EKU
// serverAuth+clientAuth; SKID/AKID; notBefore = now - 1 min, notAfter = now + validity; SHA-256.
// Response cert_chain = [leaf PEM, CA certificate PEM].
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/base/result.h"
#include "proto/ca.grpc.pb.h"
#include "test/fake_istiod/server_state.h"

namespace fake_istiod {

class Signer {
 public:
  static ambient::Result<Signer> load(const std::string& cert_path, const std::string& key_path);

  struct Issued {
    std::string leaf_pem;
    std::string identity;
    std::chrono::system_clock::time_point not_after;
  };
  // InvalidArgument for a bad CSR or an identity mismatch; Certificate when OpenSSL fails to sign.
  ambient::Result<Issued> sign(std::string_view csr_pem, const std::optional<std::string>& impersonated,
                               std::chrono::seconds validity) const;
  const std::string& ca_pem() const { return ca_pem_; }

 private:
  struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
  };
  struct KeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  };
  std::shared_ptr<X509> cert_;
  std::shared_ptr<EVP_PKEY> key_;
  std::string ca_pem_;
};

class CaService final : public istio::v1::auth::IstioCertificateService::Service {
 public:
  CaService(Signer signer, std::optional<std::string> token, Faults& faults, Stats& stats)
      : signer_(std::move(signer)), token_(std::move(token)), faults_(faults), stats_(stats) {}

  grpc::Status CreateCertificate(grpc::ServerContext* ctx, const istio::v1::auth::IstioCertificateRequest* req,
                                 istio::v1::auth::IstioCertificateResponse* resp) override;

 private:
  grpc::Status create(grpc::ServerContext& ctx, const istio::v1::auth::IstioCertificateRequest& req,
                      istio::v1::auth::IstioCertificateResponse& resp);

  const Signer signer_;
  const std::optional<std::string> token_;
  Faults& faults_;
  Stats& stats_;
};

}  // namespace fake_istiod
