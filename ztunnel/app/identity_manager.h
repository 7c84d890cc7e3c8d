#pragma once
// IdentityManager (control thread): one certificate per SPIFFE identity of the local workloads, issued by
// the built-in CA, renewed at half-life, and published to the workers as an immutable CertBundle.
//
// Invariants:
// - A published CertBundle never changes; a renewal publishes a new bundle. Connections keep the SSL_CTX
//   they started with (SSL_CTX is reference-counted), so rotation never cuts live traffic.
// - SSL_CTX objects are built here, once per identity and rotation, and shared read-only by every worker
//   (BoringSSL allows concurrent SSL_new on a configured SSL_CTX).
// - The current valid certificate stays in use while a renewal fails; a retry follows after a backoff.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <openssl/ssl.h>

#include "common/base/result.h"
#include "common/tls/ca.h"
#include "common/tls/certified_key.h"

namespace ambient::ztunnel {

struct WorkloadCert {
  std::string identity;         // spiffe://td/ns/NS/sa/SA
  tls::CertifiedKey key;
  bssl::UniquePtr<SSL_CTX> client_ctx;  // outbound HBONE with this identity
  bssl::UniquePtr<SSL_CTX> server_ctx;  // inbound HBONE serving this identity
  std::chrono::system_clock::time_point not_before, not_after;
};

// Immutable: identity -> certificate, as of `version`.
struct CertBundle {
  std::uint64_t version = 0;
  std::map<std::string, std::shared_ptr<const WorkloadCert>, std::less<>> certs;
  const WorkloadCert* find(std::string_view identity) const {
    auto it = certs.find(identity);
    return it == certs.end() ? nullptr : it->second.get();
  }
};

class IdentityManager {
 public:
  using Publish = std::function<void(std::shared_ptr<const CertBundle>)>;

  IdentityManager(boost::asio::any_io_executor control, tls::CertificateAuthority ca, std::chrono::seconds ttl,
                  Publish publish);

  // Makes the set of identities exactly `identities` (issuing what is missing, forgetting the rest) and
  // publishes the result. Issuing is synchronous (local CA: microseconds of signing).
  Result<void> set_identities(const std::set<std::string>& identities);

  std::shared_ptr<const CertBundle> current() const { return bundle_; }
  const tls::CertificateAuthority& ca() const { return ca_; }

 private:
  Result<std::shared_ptr<const WorkloadCert>> issue(const std::string& identity);
  void schedule_renewal();
  void renew_due();

  boost::asio::any_io_executor ex_;
  tls::CertificateAuthority ca_;
  std::chrono::seconds ttl_;
  Publish publish_;
  std::shared_ptr<const CertBundle> bundle_ = std::make_shared<CertBundle>();
  boost::asio::steady_timer renew_timer_;
  std::chrono::seconds backoff_{0};
};

}  // namespace ambient::ztunnel
