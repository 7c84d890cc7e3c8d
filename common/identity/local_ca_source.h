#pragma once
// LocalCaSource: certificates from the built-in CA (tls::CertificateAuthority) in this process: the
// embedded default (no cluster). Issuing is synchronous, so fetch_now() always answers.
#include "common/identity/certificate_source.h"
#include "common/tls/ca.h"

namespace ambient::identity {

class LocalCaSource final : public CertificateSource {
 public:
  explicit LocalCaSource(tls::CertificateAuthority ca) : ca_(std::move(ca)) {}

  // CertificateSource
  boost::asio::awaitable<Result<tls::CertifiedKey>> fetch(tls::SpiffeId id, std::chrono::seconds ttl) override;
  std::optional<Result<tls::CertifiedKey>> fetch_now(const tls::SpiffeId& id, std::chrono::seconds ttl) override;

  const tls::CertificateAuthority& ca() const { return ca_; }
  tls::CertificateAuthority& ca() { return ca_; }  // tests: set_clock

 private:
  tls::CertificateAuthority ca_;
};

}  // namespace ambient::identity
