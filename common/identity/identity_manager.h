#pragma once
// IdentityManager (control thread; ztunnel and waypoint): one certificate per SPIFFE identity of the local workloads, fetched
// from a CertificateSource (the built-in CA, or istiod's CA over gRPC), renewed at half-life, and
// published to the workers as an immutable CertBundle (reference ztunnel.md section 5).
//
// Invariants:
// - A published CertBundle never changes; every change publishes a new bundle. Connections keep the
//   SSL_CTX they started with (SSL_CTX is reference-counted), so rotation never cuts live traffic.
// - SSL_CTX objects are built here, once per identity and rotation, and shared read-only by every
//   worker (BoringSSL allows concurrent SSL_new on a configured SSL_CTX).
// - A bundle holds only certificates that have not expired (checked when the retry timer fires after
//   a failed renewal): an identity whose certificate expired while renewals kept failing is removed,
//   so HBONE with it fails closed ("no certificate for ...") instead of presenting an expired one.
// - At most Options::max_in_flight fetches run at once (ztunnel: 8). The rest wait in three FIFO
//   queues served in priority order: RealTime (a caller awaits it, fetch_certificate) > Warmup (a new
//   identity: set_identities, prefetch) > Background (rotation at half-life, retries). A queued fetch
//   asked for again at a higher priority moves up.
//
// Per identity: Fetching → success: publish, timer at half-life (now + backoff if the certificate is not
// valid yet) → Background fetch. Failure: backoff 500 ms doubling to 150 s; the current certificate stays
// published while valid; the timer fires at min(retry, expiry) and removes an expired certificate.
//
// Sources that answer without I/O (LocalCaSource::fetch_now) are used inline by set_identities, so the
// embedded default publishes its certificates before set_identities returns, exactly as before.
//
// Threads: every member function runs on `control` (the control io_context); no locks.
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <openssl/ssl.h>

#include "common/base/result.h"
#include "common/identity/certificate_source.h"
#include "common/telemetry/metrics.h"
#include "common/tls/ca.h"
#include "common/tls/certified_key.h"

namespace ambient::identity {

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

enum class FetchPriority : std::uint8_t {
  RealTime,    // a caller awaits the certificate (fetch_certificate)
  Warmup,      // a new identity (set_identities, prefetch)
  Background,  // rotation at half-life and retries after a failure
};

struct IdentityOptions {
  std::size_t max_in_flight = 8;                        // concurrent fetches (ztunnel: 8 CSRs)
  std::chrono::milliseconds backoff_initial{500};       // first retry after a failure
  std::chrono::milliseconds backoff_max{150'000};       // doubling stops here
  // A fresh certificate is not renewed sooner than this, even when it arrives past its half-life (a CA
  // issuing short or backdated certificates must not see a fetch loop).
  std::chrono::milliseconds min_refresh{1'000};
  telemetry::Counter fetches;                           // handles on the control thread's shard
  telemetry::Counter fetch_failures;
};

struct IdentityStats {
  std::uint64_t fetches = 0;          // started (sync ones included)
  std::uint64_t failures = 0;         // fetches that failed
  std::uint64_t expired = 0;          // certificates removed because they expired
  std::size_t in_flight = 0;
  std::size_t max_in_flight_seen = 0;
};

class IdentityManager {
 public:
  using Publish = std::function<void(std::shared_ptr<const CertBundle>)>;

  IdentityManager(boost::asio::any_io_executor control, identity::CertificateSourcePtr source, std::chrono::seconds ttl,
                  Publish publish, IdentityOptions options = {});
  // The built-in CA (LocalCaSource): the embedded default.
  IdentityManager(boost::asio::any_io_executor control, tls::CertificateAuthority ca, std::chrono::seconds ttl,
                  Publish publish);
  ~IdentityManager();
  IdentityManager(const IdentityManager&) = delete;
  IdentityManager& operator=(const IdentityManager&) = delete;

  // Makes the set of identities exactly `identities`: forgets the others (their certificates leave the
  // bundle; fetches in flight for them are dropped when they return) and starts Warmup fetches for the new
  // ones. Publishes the result once. With a synchronous source the new certificates are in that bundle and
  // the first issuing error is returned (the identity is retried with backoff); with an asynchronous one
  // they are published as they arrive and only an identity that is not a SPIFFE id is an error.
  Result<void> set_identities(const std::set<std::string>& identities);
  // Adds one identity (Warmup) without forgetting others.
  Result<void> prefetch(const std::string& identity);
  // The certificate for `identity`, fetching it at RealTime priority if there is none yet (the identity
  // is added). Errors: not a SPIFFE id, the fetch failed (the source's error), forgotten meanwhile.
  boost::asio::awaitable<Result<std::shared_ptr<const WorkloadCert>>> fetch_certificate(std::string identity);

  std::shared_ptr<const CertBundle> current() const { return bundle_; }
  const IdentityStats& stats() const noexcept { return stats_; }

 private:
  struct Entry;
  using EntryPtr = std::shared_ptr<Entry>;

  Result<EntryPtr> add(const std::string& identity);
  void enqueue(const EntryPtr& e, FetchPriority priority);
  void pump();
  boost::asio::awaitable<void> run_fetch(EntryPtr e);
  void on_fetched(const EntryPtr& e, Result<tls::CertifiedKey> r);
  void arm(const EntryPtr& e, std::chrono::system_clock::time_point at);
  void on_timer(const EntryPtr& e);
  void forget(const EntryPtr& e);
  void publish_bundle();

  boost::asio::any_io_executor ex_;
  identity::CertificateSourcePtr source_;
  std::chrono::seconds ttl_;
  Publish publish_;
  IdentityOptions options_;
  std::shared_ptr<const CertBundle> bundle_ = std::make_shared<CertBundle>();
  std::map<std::string, EntryPtr, std::less<>> entries_;
  std::deque<EntryPtr> queues_[3];  // by FetchPriority
  IdentityStats stats_;
  bool batching_ = false;  // set_identities: publish once at the end
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The certificate as the workers use it: key + chain + roots, with both SSL_CTXs built.
Result<std::shared_ptr<const WorkloadCert>> make_workload_cert(const std::string& identity, tls::CertifiedKey key);

}  // namespace ambient::identity
