#include "common/identity/identity_manager.h"

#include <algorithm>
#include <exception>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/chrono.h>
#include <spdlog/spdlog.h>

#include "common/identity/local_ca_source.h"
#include "common/tls/tls_context.h"

namespace ambient::identity {

namespace asio = boost::asio;
using SystemClock = std::chrono::system_clock;

namespace {

SystemClock::time_point half_life(const WorkloadCert& c) { return c.not_before + (c.not_after - c.not_before) / 2; }

std::string utc(SystemClock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", std::chrono::floor<std::chrono::seconds>(t));
}

}  // namespace

struct IdentityManager::Entry {
  enum class State : std::uint8_t {
    Idle,      // nothing queued; `timer` may be armed (renewal or retry)
    Queued,    // in queues_[queued_at]
    Fetching,  // a run_fetch coroutine is in flight
  };

  explicit Entry(asio::any_io_executor ex) : timer(ex), done(ex, asio::steady_timer::time_point::max()) {}

  std::string name;  // the identity as given ("spiffe://...")
  tls::SpiffeId id;
  std::shared_ptr<const WorkloadCert> cert;  // current, published; null before the first success or after expiry
  State state = State::Idle;
  FetchPriority queued_at = FetchPriority::Background;
  FetchPriority retry_priority = FetchPriority::Background;
  std::chrono::milliseconds backoff{0};  // 0 after a success; else the delay before the current retry
  SystemClock::time_point due{};         // when `timer` queues the next fetch
  std::optional<Error> last_error;       // of the last fetch, for fetch_certificate callers
  std::uint64_t completions = 0;         // fetches finished (waiters compare it)
  bool forgotten = false;
  asio::steady_timer timer;  // renewal / retry / expiry
  asio::steady_timer done;   // never expires; cancel() wakes fetch_certificate waiters
};

Result<std::shared_ptr<const WorkloadCert>> make_workload_cert(const std::string& identity, tls::CertifiedKey key) {
  auto got = key.identity();
  if (!got) return errorf(ErrorKind::Certificate, "certificate for {}: {}", identity, got.error().context);
  if (got->to_string() != identity)
    return errorf(ErrorKind::Certificate, "certificate for {} carries the identity {}", identity, got->to_string());
  auto cert = std::make_shared<WorkloadCert>();
  cert->identity = identity;
  auto client = tls::make_client_context(key);
  if (!client) return std::move(client).error();
  auto server = tls::make_server_context(key);
  if (!server) return std::move(server).error();
  auto nb = key.not_before();
  auto na = key.not_after();
  if (!nb || !na) return errorf(ErrorKind::Certificate, "certificate for {} has no validity period", identity);
  cert->not_before = *nb;
  cert->not_after = *na;
  cert->client_ctx = std::move(*client);
  cert->server_ctx = std::move(*server);
  cert->key = std::move(key);
  return std::shared_ptr<const WorkloadCert>(std::move(cert));
}

IdentityManager::IdentityManager(asio::any_io_executor control, identity::CertificateSourcePtr source,
                                 std::chrono::seconds ttl, Publish publish, IdentityOptions options)
    : ex_(control), source_(std::move(source)), ttl_(ttl), publish_(std::move(publish)), options_(std::move(options)) {
  if (options_.max_in_flight == 0) options_.max_in_flight = 1;
}

IdentityManager::IdentityManager(asio::any_io_executor control, tls::CertificateAuthority ca, std::chrono::seconds ttl,
                                 Publish publish)
    : IdentityManager(control, std::make_shared<identity::LocalCaSource>(std::move(ca)), ttl, std::move(publish)) {}

IdentityManager::~IdentityManager() {
  *alive_ = false;
  for (auto& [name, e] : entries_) {
    e->timer.cancel();
    e->done.cancel();
  }
}

Result<IdentityManager::EntryPtr> IdentityManager::add(const std::string& identity) {
  auto id = tls::parse_spiffe(identity);
  if (!id) return errorf(id.error().kind, "identity {:?}: {}", identity, id.error().context);
  auto e = std::make_shared<Entry>(ex_);
  e->name = identity;
  e->id = std::move(*id);
  entries_.emplace(identity, e);
  return e;
}

void IdentityManager::forget(const EntryPtr& e) {
  e->forgotten = true;
  e->timer.cancel();
  if (e->state == Entry::State::Queued) {
    auto& q = queues_[static_cast<int>(e->queued_at)];
    q.erase(std::remove(q.begin(), q.end(), e), q.end());
    e->state = Entry::State::Idle;
  }
  e->done.cancel();
  entries_.erase(e->name);
  spdlog::info("identity: forgot {}", e->name);
}

Result<void> IdentityManager::set_identities(const std::set<std::string>& identities) {
  std::vector<EntryPtr> gone;
  for (const auto& [name, e] : entries_)
    if (!identities.contains(name)) gone.push_back(e);
  for (const auto& e : gone) forget(e);

  std::optional<Error> first_error;
  std::vector<EntryPtr> async;
  for (const auto& name : identities) {
    if (entries_.contains(name)) continue;
    auto e = add(name);
    if (!e) {
      spdlog::warn("identity: {}", e.error());
      if (!first_error) first_error = e.error();
      continue;
    }
    if (auto now = source_->fetch_now((*e)->id, ttl_)) {
      ++stats_.fetches;
      options_.fetches.inc();
      batching_ = true;  // one bundle for the whole call
      on_fetched(*e, std::move(*now));
      batching_ = false;
      if (!(*e)->cert && !first_error && (*e)->last_error) first_error = (*e)->last_error;
    } else {
      async.push_back(std::move(*e));
    }
  }
  publish_bundle();
  for (const auto& e : async) enqueue(e, FetchPriority::Warmup);
  if (first_error) return *first_error;
  return ok();
}

Result<void> IdentityManager::prefetch(const std::string& identity) {
  if (entries_.contains(identity)) return ok();
  auto e = add(identity);
  if (!e) return std::move(e).error();
  enqueue(*e, FetchPriority::Warmup);
  return ok();
}

asio::awaitable<Result<std::shared_ptr<const WorkloadCert>>> IdentityManager::fetch_certificate(std::string identity) {
  auto alive = alive_;
  EntryPtr e;
  if (auto it = entries_.find(identity); it != entries_.end()) {
    e = it->second;
  } else {
    auto added = add(identity);
    if (!added) co_return std::move(added).error();
    e = std::move(*added);
  }
  if (e->cert && SystemClock::now() < e->cert->not_after) co_return e->cert;
  const auto seen = e->completions;
  enqueue(e, FetchPriority::RealTime);
  while (e->completions == seen && !e->forgotten) {
    co_await e->done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!*alive) co_return make_error(ErrorKind::Cancelled, "identity manager stopped");
  }
  if (e->forgotten)
    co_return errorf(ErrorKind::Cancelled, "identity {} was forgotten while its certificate was being fetched", identity);
  if (e->cert) co_return e->cert;
  if (e->last_error) co_return *e->last_error;
  co_return errorf(ErrorKind::Internal, "no certificate for {} after a fetch", identity);
}

void IdentityManager::enqueue(const EntryPtr& e, FetchPriority priority) {
  if (e->forgotten || e->state == Entry::State::Fetching) return;  // its result serves every waiter
  if (e->state == Entry::State::Queued) {
    if (priority >= e->queued_at) return;
    auto& q = queues_[static_cast<int>(e->queued_at)];
    q.erase(std::remove(q.begin(), q.end(), e), q.end());
  }
  e->timer.cancel();
  e->state = Entry::State::Queued;
  e->queued_at = priority;
  queues_[static_cast<int>(priority)].push_back(e);
  pump();
}

void IdentityManager::pump() {
  while (stats_.in_flight < options_.max_in_flight) {
    EntryPtr e;
    for (auto& q : queues_) {
      if (q.empty()) continue;
      e = std::move(q.front());
      q.pop_front();
      break;
    }
    if (!e) return;
    e->state = Entry::State::Fetching;
    ++stats_.in_flight;
    stats_.max_in_flight_seen = std::max(stats_.max_in_flight_seen, stats_.in_flight);
    ++stats_.fetches;
    options_.fetches.inc();
    asio::co_spawn(ex_, run_fetch(std::move(e)), [](std::exception_ptr p) {
      if (!p) return;
      try {
        std::rethrow_exception(p);
      } catch (const std::exception& ex) {
        spdlog::error("identity: certificate fetch ended with an exception: {}", ex.what());
      }
    });
  }
}

asio::awaitable<void> IdentityManager::run_fetch(EntryPtr e) {
  auto alive = alive_;
  auto source = source_;  // outlives this frame even if the manager goes first
  auto r = co_await source->fetch(e->id, ttl_);
  if (!*alive) co_return;
  --stats_.in_flight;
  e->state = Entry::State::Idle;
  if (!e->forgotten) on_fetched(e, std::move(r));
  pump();
}

void IdentityManager::on_fetched(const EntryPtr& e, Result<tls::CertifiedKey> r) {
  const auto now = SystemClock::now();
  auto next_backoff = [&] {
    return e->backoff.count() == 0 ? options_.backoff_initial : std::min(e->backoff * 2, options_.backoff_max);
  };
  Result<std::shared_ptr<const WorkloadCert>> cert =
      r ? make_workload_cert(e->name, std::move(*r)) : Result<std::shared_ptr<const WorkloadCert>>(std::move(r).error());
  ++e->completions;
  e->done.cancel();  // waiters run after this returns (posted), and see the outcome below
  if (cert) {
    e->cert = std::move(*cert);
    e->last_error.reset();
    publish_bundle();
    if (now < e->cert->not_before) {
      // Not valid yet (the CA's clock is ahead of ours): keep it (peers may accept it) and fetch again soon.
      e->backoff = next_backoff();
      spdlog::warn("identity: certificate for {} is not valid before {} (clock skew with the CA?); fetching again in {} ms",
                   e->name, utc(e->cert->not_before), e->backoff.count());
      e->retry_priority = FetchPriority::Background;
      arm(e, now + e->backoff);
      return;
    }
    e->backoff = std::chrono::milliseconds(0);
    spdlog::info("identity: issued certificate for {} valid until {}", e->name, utc(e->cert->not_after));
    e->retry_priority = FetchPriority::Background;
    auto renew = half_life(*e->cert);
    if (renew <= now) {
      // Past its half-life on arrival (a short lifetime with notBefore backdated, or a slow CA): renew at
      // half of what is left, so a CA issuing such certificates is not asked again every min_refresh.
      renew = now + (e->cert->not_after - now) / 2;
      const auto in = std::max<SystemClock::duration>(renew - now, options_.min_refresh);
      spdlog::warn("identity: certificate for {} arrived past its half-life (valid {} to {}); renewing in {} ms", e->name,
                   utc(e->cert->not_before), utc(e->cert->not_after),
                   std::chrono::duration_cast<std::chrono::milliseconds>(in).count());
    }
    arm(e, std::max<SystemClock::time_point>(renew, now + options_.min_refresh));
    return;
  }
  ++stats_.failures;
  options_.fetch_failures.inc();
  e->last_error = cert.error();
  e->backoff = next_backoff();
  if (e->cert && now >= e->cert->not_after) {
    spdlog::warn("identity: certificate for {} expired at {} and its renewal keeps failing: removed (HBONE with this "
                 "identity fails until a fetch succeeds); retry in {} ms: {}",
                 e->name, utc(e->cert->not_after), e->backoff.count(), cert.error());
    e->cert.reset();
    ++stats_.expired;
    publish_bundle();
  } else if (e->cert) {
    spdlog::warn("identity: renewal of {} failed, keeping the current certificate (valid until {}); retry in {} ms: {}",
                 e->name, utc(e->cert->not_after), e->backoff.count(), cert.error());
  } else {
    spdlog::warn("identity: cannot get a certificate for {}; retry in {} ms: {}", e->name, e->backoff.count(), cert.error());
  }
  e->retry_priority = e->cert ? FetchPriority::Background : FetchPriority::Warmup;
  arm(e, now + e->backoff);
}

void IdentityManager::arm(const EntryPtr& e, SystemClock::time_point at) {
  e->due = at;
  auto wake = at;
  if (e->cert) wake = std::min(wake, e->cert->not_after);  // an expired certificate leaves the bundle on time
  const auto wait = std::max<SystemClock::duration>(wake - SystemClock::now(), SystemClock::duration::zero());
  e->timer.expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(wait));
  e->timer.async_wait([this, alive = alive_, weak = std::weak_ptr<Entry>(e)](boost::system::error_code ec) {
    if (ec || !*alive) return;
    auto entry = weak.lock();
    if (entry && !entry->forgotten && entry->state == Entry::State::Idle) on_timer(entry);
  });
}

void IdentityManager::on_timer(const EntryPtr& e) {
  const auto now = SystemClock::now();
  if (e->cert && now >= e->cert->not_after) {
    spdlog::warn("identity: certificate for {} expired at {} before a renewal succeeded{}: removed (HBONE with this "
                 "identity fails until a fetch succeeds)",
                 e->name, utc(e->cert->not_after),
                 e->last_error ? fmt::format(" (last error: {})", *e->last_error) : std::string());
    e->cert.reset();
    ++stats_.expired;
    publish_bundle();
  }
  // Timers and the system clock can disagree by a little: a wake within 5 ms of `due` is on time.
  if (now + std::chrono::milliseconds(5) >= e->due) enqueue(e, e->retry_priority);
  else arm(e, e->due);
}

void IdentityManager::publish_bundle() {
  if (batching_) return;
  auto next = std::make_shared<CertBundle>();
  next->version = bundle_->version + 1;
  for (const auto& [name, e] : entries_)
    if (e->cert) next->certs.emplace(name, e->cert);
  bundle_ = std::move(next);
  publish_(bundle_);
}

}  // namespace ambient::identity
