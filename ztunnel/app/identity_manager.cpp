#include "ztunnel/app/identity_manager.h"

#include <fmt/chrono.h>
#include <spdlog/spdlog.h>

#include "common/tls/tls_context.h"

namespace ambient::ztunnel {

namespace {
constexpr std::chrono::seconds kMinBackoff{1};
constexpr std::chrono::seconds kMaxBackoff{150};  // ztunnel's per-identity backoff cap

std::chrono::system_clock::time_point half_life(const WorkloadCert& c) { return c.not_before + (c.not_after - c.not_before) / 2; }
}  // namespace

IdentityManager::IdentityManager(boost::asio::any_io_executor control, tls::CertificateAuthority ca, std::chrono::seconds ttl,
                                 Publish publish)
    : ex_(control), ca_(std::move(ca)), ttl_(ttl), publish_(std::move(publish)), renew_timer_(control) {}

Result<std::shared_ptr<const WorkloadCert>> IdentityManager::issue(const std::string& identity) {
  auto id = tls::parse_spiffe(identity);
  if (!id) return std::move(id).error();
  auto key = ca_.issue(*id, ttl_);
  if (!key) return std::move(key).error();
  auto cert = std::make_shared<WorkloadCert>();
  cert->identity = identity;
  auto client = tls::make_client_context(*key);
  if (!client) return std::move(client).error();
  auto server = tls::make_server_context(*key);
  if (!server) return std::move(server).error();
  auto nb = key->not_before();
  auto na = key->not_after();
  if (!nb || !na) return errorf(ErrorKind::Certificate, "certificate for {} has no validity period", identity);
  cert->not_before = *nb;
  cert->not_after = *na;
  cert->client_ctx = std::move(*client);
  cert->server_ctx = std::move(*server);
  cert->key = std::move(*key);
  spdlog::info("identity: issued certificate for {} valid until {:%Y-%m-%dT%H:%M:%SZ}", identity,
               std::chrono::floor<std::chrono::seconds>(cert->not_after));
  return std::shared_ptr<const WorkloadCert>(std::move(cert));
}

Result<void> IdentityManager::set_identities(const std::set<std::string>& identities) {
  auto next = std::make_shared<CertBundle>();
  next->version = bundle_->version + 1;
  std::optional<Error> first_error;
  for (const auto& id : identities) {
    if (auto* have = bundle_->find(id)) {
      next->certs.emplace(id, bundle_->certs.find(id)->second);
      (void)have;
      continue;
    }
    auto cert = issue(id);
    if (!cert) {
      spdlog::warn("identity: cannot issue a certificate for {}: {}", id, cert.error());
      if (!first_error) first_error = cert.error();
      continue;
    }
    next->certs.emplace(id, std::move(*cert));
  }
  bundle_ = std::move(next);
  publish_(bundle_);
  schedule_renewal();
  if (first_error) return *first_error;
  return ok();
}

void IdentityManager::schedule_renewal() {
  if (bundle_->certs.empty()) {
    renew_timer_.cancel();
    return;
  }
  auto due = std::chrono::system_clock::time_point::max();
  for (const auto& [id, c] : bundle_->certs) due = std::min(due, half_life(*c));
  auto wait = due - std::chrono::system_clock::now();
  if (backoff_.count() > 0) wait = std::max<std::chrono::system_clock::duration>(wait, backoff_);
  if (wait < std::chrono::system_clock::duration::zero()) wait = std::chrono::system_clock::duration::zero();
  renew_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(wait));
  renew_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) renew_due();
  });
}

void IdentityManager::renew_due() {
  const auto now = std::chrono::system_clock::now();
  auto next = std::make_shared<CertBundle>(*bundle_);
  next->version = bundle_->version + 1;
  bool failed = false, changed = false;
  for (auto& [id, cert] : next->certs) {
    if (half_life(*cert) > now) continue;
    auto fresh = issue(id);
    if (!fresh) {
      spdlog::warn("identity: renewal of {} failed, keeping the current certificate (valid until {:%FT%TZ}): {}", id,
                   std::chrono::floor<std::chrono::seconds>(cert->not_after), fresh.error());
      failed = true;
      continue;
    }
    cert = std::move(*fresh);
    changed = true;
  }
  backoff_ = failed ? std::min(kMaxBackoff, std::max(kMinBackoff, backoff_ * 2)) : std::chrono::seconds(0);
  if (changed) {
    bundle_ = std::move(next);
    publish_(bundle_);
  }
  schedule_renewal();
}

}  // namespace ambient::ztunnel
