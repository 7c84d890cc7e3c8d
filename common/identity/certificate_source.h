#pragma once
// CertificateSource: where workload certificates come from (ztunnel's CaClientTrait). The seam between
// the identity manager (ztunnel/app/identity_manager.h: caching, renewal, backoff, concurrency) and
// the issuer: the built-in CA (local_ca_source.h) or istiod's CA over gRPC (istio_ca_client.h).
//
// Contract:
//   - fetch() runs on the control executor. Several fetches may be in flight at once (the manager
//     bounds how many); implementations hold no per-call state in members beyond what they share
//     on purpose (a connection).
//   - A returned CertifiedKey satisfies the CertifiedKey invariants (key matches chain[0], roots
//     non-empty) and its leaf carries `id` as its SPIFFE identity. Errors say what failed, from where
//     and why; the caller retries with backoff, so a source never retries by itself.
#include <chrono>
#include <memory>
#include <optional>

#include <boost/asio/awaitable.hpp>

#include "common/base/result.h"
#include "common/tls/certified_key.h"
#include "common/tls/spiffe.h"

namespace ambient::identity {

class CertificateSource {
 public:
  virtual ~CertificateSource() = default;

  // A certificate for `id`, valid for about `ttl` (the CA may shorten it). Arguments are taken by value:
  // the coroutine frame owns them.
  virtual boost::asio::awaitable<Result<tls::CertifiedKey>> fetch(tls::SpiffeId id, std::chrono::seconds ttl) = 0;

  // For sources that need no I/O (the built-in CA: microseconds of signing): the certificate now.
  // nullopt means "use fetch()". The manager issues inline when it can, so the embedded default has its
  // certificates before start() returns.
  virtual std::optional<Result<tls::CertifiedKey>> fetch_now(const tls::SpiffeId& /*id*/, std::chrono::seconds /*ttl*/) {
    return std::nullopt;
  }
};

using CertificateSourcePtr = std::shared_ptr<CertificateSource>;

}  // namespace ambient::identity
