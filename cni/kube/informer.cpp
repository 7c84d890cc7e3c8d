#include "cni/kube/informer.h"

#include <exception>
#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "cni/kube/object_cache.h"
#include "cni/kube/object_meta.h"

namespace ambient::cni::kube {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;
using Clock = std::chrono::steady_clock;

struct Informer::Core {
  asio::any_io_executor executor;
  ApiClient client;
  InformerOptions options;
  Handler handler;
  ObjectCache cache;
  InformerStats stats;
  std::string resource_version;
  Backoff backoff;
  std::minstd_rand rng{std::random_device{}()};
  asio::cancellation_signal cancel;  // stop() -> terminal cancellation of the list/watch/sleep in flight
  bool started = false;
  bool stopped = false;
  bool synced = false;

  Core(asio::any_io_executor ex, ApiClient c, InformerOptions o, Handler h)
      : executor(std::move(ex)), client(std::move(c)), options(std::move(o)), handler(std::move(h)),
        backoff(options.backoff) {}

  void upserted(const json::object& object) {
    if (stopped) return;
    ++stats.upserts;
    if (handler.on_upsert) handler.on_upsert(object);
  }
  void deleted(const json::object& object) {
    if (stopped) return;
    ++stats.deletes;
    if (handler.on_delete) handler.on_delete(object);
  }
};

namespace {

using CorePtr = std::shared_ptr<Informer::Core>;

std::string describe(const json::object& object) {
  auto meta = read_object_meta(object, "object");
  if (!meta) return "?";
  return object_key(meta->namespace_, meta->name);
}

void apply_list(Informer::Core& core, ListResult listed) {
  ObjectCache::Diff diff = core.cache.replace(std::move(listed.items));
  core.resource_version = std::move(listed.resource_version);
  ++core.stats.lists;
  if (diff.invalid > 0) {
    spdlog::warn("kube informer {}: the list held {} items without metadata.name/uid (skipped)", core.options.name,
                 diff.invalid);
  }
  spdlog::debug("kube informer {}: listed {} objects at resourceVersion {} ({} changed, {} deleted)",
                core.options.name, core.cache.size(), core.resource_version, diff.upserted.size(), diff.deleted.size());
  for (const auto& gone : diff.deleted) core.deleted(gone);
  for (const auto& key : diff.upserted) {
    if (const json::object* object = core.cache.find_key(key)) core.upserted(*object);
  }
  core.synced = true;
  if (!core.stopped && core.handler.on_synced) core.handler.on_synced();
}

void apply_event(Informer::Core& core, WatchEvent event) {
  if (core.stopped) return;
  json::object& object = event.object.as_object();  // parse_watch_event guarantees an object
  const std::string rv(resource_version_of(object));
  ++core.stats.events;
  if (spdlog::should_log(spdlog::level::trace)) {
    spdlog::trace("kube informer {}: {} {} at resourceVersion {}", core.options.name, to_string(event.type),
                  describe(object), rv);
  }
  switch (event.type) {
    case WatchEvent::Type::Added:
    case WatchEvent::Type::Modified: {
      auto up = core.cache.upsert(std::move(object));
      if (!up) {  // parse_watch_event checked name/uid: not reached
        spdlog::warn("kube informer {}: event not applied: {}", core.options.name, up.error());
        break;
      }
      if (up->replaced) core.deleted(*up->replaced);
      if (up->changed) core.upserted(*up->object);
      break;
    }
    case WatchEvent::Type::Deleted: {
      auto meta = read_object_meta(object, "object");
      if (!meta) break;
      if (auto gone = core.cache.erase(meta->namespace_, meta->name)) {
        (void)gone;
        core.deleted(object);
      }
      break;
    }
    case WatchEvent::Type::Bookmark:
    case WatchEvent::Type::Error:
      break;
  }
  if (!rv.empty()) core.resource_version = rv;
}

std::string watch_query(Informer::Core& core) {
  const auto lo = std::max<std::int64_t>(1, core.options.min_watch_timeout.count());
  const auto hi = std::max<std::int64_t>(lo, core.options.max_watch_timeout.count());
  const auto timeout = std::uniform_int_distribution<std::int64_t>(lo, hi)(core.rng);
  std::string query = core.options.query;
  if (!query.empty()) query += '&';
  query += fmt::format("resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds={}",
                       query_escape(core.resource_version), timeout);
  return query;
}

void record_failure(Informer::Core& core, std::string_view what, const Error& error, std::chrono::milliseconds delay) {
  ++core.stats.errors;
  core.stats.last_error = error.message();
  spdlog::warn("kube informer {}: {} failed, retrying in {} ms: {}", core.options.name, what, delay.count(), error);
}

awaitable<void> pause(asio::steady_timer& timer, std::chrono::milliseconds delay) {
  timer.expires_after(delay);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));  // a cancellation just ends the wait
}

awaitable<void> run(CorePtr core) {
  co_await asio::this_coro::throw_if_cancelled(false);  // stop() ends awaits with errors; the loop checks `stopped`
  asio::steady_timer timer(core->executor);
  bool need_list = true;
  while (!core->stopped) {
    if (need_list) {
      auto listed = co_await core->client.list(core->options.path, core->options.query);
      if (core->stopped) break;
      if (!listed) {
        const auto delay = core->backoff.next();
        record_failure(*core, "list " + core->options.path, listed.error(), delay);
        co_await pause(timer, delay);
        continue;
      }
      apply_list(*core, std::move(*listed));
      need_list = false;
      continue;
    }

    ++core->stats.watches;
    const auto started = Clock::now();
    const auto events_before = core->stats.events;
    std::function<void(WatchEvent)> on_event = [core](WatchEvent event) { apply_event(*core, std::move(event)); };
    auto watched = co_await core->client.watch(core->options.path, watch_query(*core), std::move(on_event));
    if (core->stopped) break;
    const bool delivered = core->stats.events > events_before;
    if (delivered) core->backoff.reset();
    if (watched) {
      if (delivered || Clock::now() - started >= core->options.min_healthy_watch) {
        core->backoff.reset();
        continue;  // the server's timeoutSeconds: watch again from the last resourceVersion
      }
      const auto delay = core->backoff.next();
      spdlog::debug("kube informer {}: watch ended at once without events; next in {} ms", core->options.name,
                    delay.count());
      co_await pause(timer, delay);
      continue;
    }
    if (is_gone(watched.error())) {
      ++core->stats.relists_on_gone;
      spdlog::info("kube informer {}: resourceVersion {} is too old, relisting: {}", core->options.name,
                   core->resource_version, watched.error());
      need_list = true;
      continue;
    }
    if (watched.error().kind == ErrorKind::InvalidArgument) ++core->stats.malformed_events;
    const auto delay = core->backoff.next();
    record_failure(*core, fmt::format("watch {} (resuming from resourceVersion {})", core->options.path,
                                      core->resource_version),
                   watched.error(), delay);
    co_await pause(timer, delay);
  }
  spdlog::debug("kube informer {}: stopped", core->options.name);
}

}  // namespace

Informer::Informer(asio::any_io_executor executor, ApiClient& client, InformerOptions options, Handler handler)
    : core_(std::make_shared<Core>(std::move(executor), client, std::move(options), std::move(handler))) {
  if (core_->options.name.empty()) core_->options.name = core_->options.path;
}

Informer::~Informer() { stop(); }

void Informer::start() {
  if (core_->started || core_->stopped) return;
  core_->started = true;
  std::string name = core_->options.name;
  asio::co_spawn(core_->executor, run(core_),
                 asio::bind_cancellation_slot(core_->cancel.slot(), [name](std::exception_ptr e) {
                   if (!e) return;
                   try {
                     std::rethrow_exception(e);
                   } catch (const std::exception& ex) {
                     spdlog::error("kube informer {}: ended by an exception: {}", name, ex.what());
                   } catch (...) {
                     spdlog::error("kube informer {}: ended by an unknown exception", name);
                   }
                 }));
}

void Informer::stop() {
  if (!core_ || core_->stopped) return;
  core_->stopped = true;
  core_->cancel.emit(asio::cancellation_type::terminal);
}

const json::object* Informer::get(std::string_view namespace_, std::string_view name) const {
  return core_->cache.find(namespace_, name);
}

std::size_t Informer::size() const { return core_->cache.size(); }
bool Informer::synced() const { return core_->synced; }
const std::string& Informer::resource_version() const { return core_->resource_version; }
InformerStats Informer::stats() const { return core_->stats; }

}  // namespace ambient::cni::kube
