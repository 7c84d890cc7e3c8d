#include "ztunnel/inpod/workload_proxy_manager.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace ambient::ztunnel {

namespace asio = boost::asio;

WorkloadProxyManager::WorkloadProxyManager(asio::any_io_executor ex, std::string trust_domain, PodProxyHost& host,
                                           std::function<void(bool, const std::string&)> on_ready, std::chrono::milliseconds retry_interval)
    : ex_(ex), trust_domain_(std::move(trust_domain)), host_(host), on_ready_(std::move(on_ready)),
      retry_interval_(retry_interval), retry_timer_(ex) {}

std::set<std::string> WorkloadProxyManager::identities() const {
  std::set<std::string> out;
  for (const auto& [uid, p] : pods_) out.insert(p.spec.identity);
  return out;
}

std::size_t WorkloadProxyManager::pending() const {
  std::size_t n = 0;
  for (const auto& [uid, p] : pods_) n += p.running ? 0 : 1;
  return n;
}

void WorkloadProxyManager::stop() {
  stopped_ = true;
  retry_timer_.cancel();
}

asio::awaitable<Result<void>> WorkloadProxyManager::start(PodState& pod) {
  const std::string uid = pod.spec.uid;
  auto r = co_await host_.start_pod(pod.spec);
  // `pod` may have been erased while start_pod ran (a Del on another path): look it up again.
  auto it = pods_.find(uid);
  if (it == pods_.end()) co_return ok();
  const auto& info = it->second.spec.info;
  if (!r) {
    it->second.running = false;
    it->second.last_error = r.error().context;
    spdlog::warn("inpod: pod {} ({}/{}): failure to start proxy: {}; retrying every {} ms", uid, info.ns, info.name,
                 r.error().context, retry_interval_.count());
    schedule_retry();
    update_ready();
    co_return errorf(r.error().kind, "failure to start proxy: {}", r.error().context);
  }
  it->second.running = true;
  it->second.last_error.clear();
  spdlog::info("inpod: pod {} ({}/{}) enrolled: proxy running as {}", uid, info.ns, info.name, it->second.spec.identity);
  update_ready();
  co_return ok();
}

asio::awaitable<Result<void>> WorkloadProxyManager::add(std::string uid, zds::WorkloadInfo info, net::UniqueFd netns) {
  auto id = net::check_is_netns(netns.get()) ? net::netns_id(netns.get()) : Result<net::NetnsId>(net::check_is_netns(netns.get()).error());
  if (!id) co_return errorf(ErrorKind::InvalidArgument, "pod {}: the fd is not a network namespace: {}", uid, id.error().context);
  if (auto it = pods_.find(uid); it != pods_.end()) {
    if (it->second.netns_id == *id && it->second.spec.info == info) {
      if (it->second.running) co_return ok();  // the same pod again (a snapshot replay): nothing to do
      co_return co_await start(it->second);    // pending: try now
    }
    spdlog::info("inpod: pod {}: new network namespace (sandbox re-created): replacing its proxy", uid);
    pods_.erase(it);
    co_await host_.stop_pod(uid);
  }
  PodState pod;
  pod.spec.uid = uid;
  pod.spec.identity = fmt::format("spiffe://{}/ns/{}/sa/{}", trust_domain_, info.ns, info.service_account);
  pod.spec.info = std::move(info);
  pod.spec.netns = std::make_shared<const net::UniqueFd>(std::move(netns));
  pod.netns_id = *id;
  pod.added = std::chrono::steady_clock::now();
  auto& entry = pods_.insert_or_assign(uid, std::move(pod)).first->second;
  host_.pods_changed();  // certificates for the new identity before the first connection
  co_return co_await start(entry);
}

asio::awaitable<void> WorkloadProxyManager::remove(std::string uid) {
  auto it = pods_.find(uid);
  if (it == pods_.end()) co_return;
  pods_.erase(it);
  co_await host_.stop_pod(uid);
  spdlog::info("inpod: pod {} removed: proxy drained", uid);
  host_.pods_changed();
  update_ready();
}

asio::awaitable<void> WorkloadProxyManager::reconcile(std::set<std::string> seen) {
  std::vector<std::string> stale;
  for (const auto& [uid, p] : pods_)
    if (!seen.contains(uid)) stale.push_back(uid);
  for (const auto& uid : stale) {
    spdlog::info("inpod: pod {} not in the node agent's snapshot: draining its proxy", uid);
    pods_.erase(uid);
    co_await host_.stop_pod(uid);
  }
  if (!stale.empty()) host_.pods_changed();
  snapshot_done_ = true;
  update_ready();
}

void WorkloadProxyManager::connection_changed(bool connected, bool snapshot_done) {
  snapshot_done_ = connected && snapshot_done;
  update_ready();
}

void WorkloadProxyManager::update_ready() {
  const bool ready = snapshot_done_ && pending() == 0;
  std::string why_not;
  if (!snapshot_done_) why_not = "no node agent snapshot yet";
  for (const auto& [uid, p] : pods_) {
    if (p.running) continue;
    why_not += fmt::format("{}pod {} ({}/{}) pending", why_not.empty() ? "" : ", ", uid, p.spec.info.ns, p.spec.info.name);
    if (why_not.size() > 512) {  // readiness stays readable with many pods pending
      why_not += ", ...";
      break;
    }
  }
  if (ready == ready_ && why_not == why_not_) return;
  ready_ = ready;
  why_not_ = why_not;
  if (on_ready_) on_ready_(ready, why_not);
}

void WorkloadProxyManager::schedule_retry() {
  if (retry_armed_ || stopped_) return;
  retry_armed_ = true;
  asio::co_spawn(ex_, retry_pending(), asio::detached);
}

asio::awaitable<void> WorkloadProxyManager::retry_pending() {
  retry_timer_.expires_after(retry_interval_);
  auto [ec] = co_await retry_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  retry_armed_ = false;
  if (ec || stopped_) co_return;
  std::vector<std::string> pending;
  for (const auto& [uid, p] : pods_)
    if (!p.running) pending.push_back(uid);
  for (const auto& uid : pending) {
    auto it = pods_.find(uid);
    if (it == pods_.end() || it->second.running) continue;
    (void)co_await start(it->second);  // failure re-arms the timer
  }
}

}  // namespace ambient::ztunnel
