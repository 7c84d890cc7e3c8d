#include "common/identity/local_ca_source.h"

namespace ambient::identity {

boost::asio::awaitable<Result<tls::CertifiedKey>> LocalCaSource::fetch(tls::SpiffeId id, std::chrono::seconds ttl) {
  co_return *fetch_now(id, ttl);
}

std::optional<Result<tls::CertifiedKey>> LocalCaSource::fetch_now(const tls::SpiffeId& id, std::chrono::seconds ttl) {
  auto key = ca_.issue(id, ttl);
  if (!key) return Result<tls::CertifiedKey>(errorf(key.error().kind, "built-in CA: {}", key.error().context));
  return Result<tls::CertifiedKey>(std::move(*key));
}

}  // namespace ambient::identity
