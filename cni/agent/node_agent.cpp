#include "cni/agent/node_agent.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>

#include "common/net/netns.h"

namespace ambient::cni {

namespace asio = boost::asio;

namespace {

// Opens the pod's netns path and checks it is one. InvalidArgument (the caller named a bad path) otherwise.
Result<std::pair<net::UniqueFd, net::NetnsId>> open_pod_netns(const std::string& path) {
  auto fd = net::open_netns(path);
  if (!fd) return errorf(ErrorKind::InvalidArgument, "netns {}: cannot be opened: {}", path, fd.error().context);
  if (auto r = net::check_is_netns(fd->get()); !r) return errorf(ErrorKind::InvalidArgument, "netns {}: {}", path, r.error().context);
  auto id = net::netns_id(fd->get());
  if (!id) return errorf(ErrorKind::Io, "netns {}: {}", path, id.error().context);
  return std::pair<net::UniqueFd, net::NetnsId>{std::move(*fd), *id};
}

// Blocking rules work, run on the pool thread that co_spawn put it on.
asio::awaitable<Result<void>> rules_job(InpodRules* rules, int netns_fd, RuleOptions options, bool install) {
  co_return install ? rules->install(netns_fd, options) : rules->remove(netns_fd, options);
}

}  // namespace

NodeAgent::NodeAgent(asio::any_io_executor ex, NodeAgentOptions options)
    : ex_(ex), options_(std::move(options)), store_(options_.store), rules_(options_.backend),
      rules_pool_(std::max(1u, options_.rules_threads)) {}

NodeAgent::~NodeAgent() {
  stop();
  rules_pool_.join();
}

void NodeAgent::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& s : sources_) s->stop();
  if (zds_) zds_->stop();
}

RuleOptions NodeAgent::rules_for(const PodSpec& spec) const {
  RuleOptions o = options_.rules;
  if (spec.options.dns_capture) o.dns_capture = *spec.options.dns_capture;
  return o;
}

asio::awaitable<Result<void>> NodeAgent::run_rules(int netns_fd, RuleOptions options, bool install) {
  co_return co_await asio::co_spawn(rules_pool_, rules_job(&rules_, netns_fd, std::move(options), install), asio::use_awaitable);
}

Result<void> NodeAgent::reconcile_store() {
  if (auto r = store_.load(); !r) return r;
  for (const auto& record : store_.all()) {
    const auto& uid = record.spec.uid;
    auto opened = open_pod_netns(record.spec.netns);
    if (!opened || !(opened->second == record.netns_id)) {
      // The pod is gone (or its path now names another pod's netns): nothing of ours to keep or touch.
      spdlog::warn("agent: pod {} ({}/{}): {}; forgetting it", uid, record.spec.namespace_, record.spec.name,
                   opened ? "its netns path now names another network namespace" : opened.error().context);
      (void)store_.remove(uid);
      ++stats_.dropped;
      continue;
    }
    if (options_.reconcile_rules_on_startup) {
      const auto rule_options = rules_for(record.spec);
      auto check = rules_.verify(opened->first.get(), rule_options);
      if (!check) {
        spdlog::warn("agent: pod {}: cannot verify its rules: {}", uid, check.error());
      } else if (check->presence != RulesPresence::Exact) {
        spdlog::warn("agent: pod {}: rules {} ({} differences, first: {}); repairing", uid,
                     check->presence == RulesPresence::Absent ? "absent" : "drifted", check->differences.size(),
                     check->differences.empty() ? "-" : check->differences.front());
        if (auto r = rules_.install(opened->first.get(), rule_options); !r)
          spdlog::error("agent: pod {}: repairing its rules failed: {}", uid, r.error());
        else
          ++stats_.repaired;
      }
    }
    netns_[uid] = std::move(opened->first);
  }
  spdlog::info("agent: {} pods from {} ({} dropped, {} repaired)", store_.size(), store_.path(), stats_.dropped, stats_.repaired);
  return ok();
}

std::vector<ZdsSnapshotPod> NodeAgent::snapshot() const {
  std::vector<ZdsSnapshotPod> pods;
  for (const auto& record : store_.all()) {
    ZdsSnapshotPod p;
    p.uid = record.spec.uid;
    p.info = zds::WorkloadInfo{record.spec.name, record.spec.namespace_,
                               record.spec.service_account.empty() ? options_.default_service_account : record.spec.service_account};
    if (auto it = netns_.find(p.uid); it != netns_.end()) p.netns = net::UniqueFd(::fcntl(it->second.get(), F_DUPFD_CLOEXEC, 0));
    pods.push_back(std::move(p));
  }
  return pods;
}

Result<void> NodeAgent::start(std::vector<PodSourcePtr> sources) {
  AMBIENT_TRY(reconcile_store());
  zds_ = std::make_unique<ZdsServer>(ex_, options_.zds, [this] { return snapshot(); });
  zds_->on_connection([this](const ZdsConnectionEvent& e) {
    spdlog::info("agent: ztunnel connection {} {} ({} open, {} ready)", e.connection_id,
                 e.kind == ZdsConnectionEvent::Kind::Ready ? "ready" : "gone", e.connections, e.ready_connections);
    if (e.kind == ZdsConnectionEvent::Kind::Ready && !retrying_) {
      retrying_ = true;
      asio::co_spawn(ex_, retry_pending(), asio::detached);
    }
  });
  AMBIENT_TRY(zds_->start());
  sources_ = std::move(sources);
  for (auto& s : sources_) AMBIENT_TRY(s->start(*this));
  return ok();
}

asio::awaitable<void> NodeAgent::lock(std::string uid) {
  asio::steady_timer wait(ex_);
  while (busy_.contains(uid)) {
    wait.expires_after(std::chrono::milliseconds(5));
    co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  busy_.insert(uid);
}

void NodeAgent::unlock(const std::string& uid) { busy_.erase(uid); }

asio::awaitable<Result<void>> NodeAgent::add_pod(PodSpec spec, PodSourceKind source) {
  if (source == PodSourceKind::Cni && cni_admission_) {
    const std::string who = spec.namespace_ + "/" + spec.name;
    auto admitted = co_await cni_admission_(std::move(spec));
    if (!admitted) {
      ++stats_.add_failures;
      co_return errorf(admitted.error().kind, "CNI ADD of pod {}: {}", who, admitted.error().context);
    }
    if (!*admitted) co_return ok();  // not selected for the mesh: the pod starts without redirection
    spec = std::move(**admitted);
    if (auto v = validate_pod_spec(spec); !v) co_return errorf(ErrorKind::InvalidArgument, "CNI ADD of pod {}: {}", who, v.error().context);
  }
  const std::string uid = spec.uid;
  co_await lock(uid);
  auto r = co_await add_locked(std::move(spec), source);
  unlock(uid);
  if (!r) ++stats_.add_failures;
  co_return r;
}

asio::awaitable<Result<void>> NodeAgent::add_locked(PodSpec spec, PodSourceKind source) {
  if (stopped_) co_return errorf(ErrorKind::Cancelled, "agent is stopping");
  const std::string uid = spec.uid;
  auto opened = open_pod_netns(spec.netns);
  if (!opened) co_return std::move(opened).error();
  if (const PodRecord* known = store_.get(uid); known != nullptr) {
    if (known->netns_id == opened->second && known->spec == spec && known->status == PodStatus::Enabled &&
        zds_->ready_connection_count() > 0)
      co_return ok();  // already enrolled exactly so
    if (!(known->netns_id == opened->second)) spdlog::info("agent: pod {}: new network namespace (sandbox re-created)", uid);
  }
  // 1. Rules inside the pod's netns: traffic is captured (and held if no ztunnel serves it: fail closed).
  const auto started = std::chrono::steady_clock::now();
  if (auto r = co_await run_rules(opened->first.get(), rules_for(spec), true); !r)
    co_return errorf(r.error().kind, "pod {}: installing the in-pod rules: {}", uid, r.error().context);
  const auto rules_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  // 2. Recorded as pending before ztunnel hears of it: a restart from here on finds and finishes it.
  PodRecord record;
  if (const PodRecord* known = store_.get(uid)) record = *known;
  else record.created_at = unix_millis_now();
  record.spec = std::move(spec);
  record.netns_id = opened->second;
  record.status = PodStatus::Pending;
  record.source = source;
  record.updated_at = unix_millis_now();
  if (auto r = store_.upsert(record); !r) co_return r;
  netns_[uid] = std::move(opened->first);
  // 3. The newest ztunnel takes the pod.
  const auto sent = std::chrono::steady_clock::now();
  auto r = co_await send_to_ztunnel(uid);
  if (r)
    spdlog::info("agent: pod {} timing: rules {:.1f} ms, ztunnel {:.1f} ms", uid, rules_ms,
                 std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count());
  co_return r;
}

asio::awaitable<Result<void>> NodeAgent::send_to_ztunnel(std::string uid) {
  const PodRecord* record = store_.get(uid);
  auto fd = netns_.find(uid);
  if (record == nullptr || fd == netns_.end()) co_return errorf(ErrorKind::NotFound, "pod {} is no longer enrolled", uid);
  zds::WorkloadInfo info{record->spec.name, record->spec.namespace_,
                         record->spec.service_account.empty() ? options_.default_service_account : record->spec.service_account};
  auto r = co_await zds_->add(uid, std::move(info), fd->second.get());
  record = store_.get(uid);  // the store may have changed while we waited
  if (record == nullptr) co_return errorf(ErrorKind::NotFound, "pod {} was unenrolled meanwhile", uid);
  if (!r) {
    spdlog::warn("agent: pod {} ({}/{}) is pending: {}", uid, record->spec.namespace_, record->spec.name, r.error());
    co_return errorf(ErrorKind::Unsupported, "partial add error: pod {} has its rules but no ztunnel took it: {}", uid,
                     r.error().message());
  }
  PodRecord enabled = *record;
  enabled.status = PodStatus::Enabled;
  enabled.updated_at = unix_millis_now();
  if (auto u = store_.upsert(std::move(enabled)); !u) co_return u;
  ++stats_.enrolled;
  spdlog::info("agent: pod {} ({}/{}) enrolled", uid, record->spec.namespace_, record->spec.name);
  co_return ok();
}

asio::awaitable<void> NodeAgent::retry_pending() {
  // A ztunnel completed its snapshot: pods still pending (no ztunnel had acked them) are sent again.
  std::vector<std::string> pending;
  for (const auto& r : store_.all())
    if (r.status == PodStatus::Pending) pending.push_back(r.spec.uid);
  for (const auto& uid : pending) {
    if (stopped_) break;
    co_await lock(uid);
    const PodRecord* r = store_.get(uid);
    if (r != nullptr && r->status == PodStatus::Pending) {
      ++stats_.pending_retries;
      (void)co_await send_to_ztunnel(uid);
    }
    unlock(uid);
  }
  retrying_ = false;
}

asio::awaitable<Result<void>> NodeAgent::remove_pod(std::string uid) {
  co_await lock(uid);
  auto r = co_await remove_locked(uid);
  unlock(uid);
  co_return r;
}

asio::awaitable<Result<void>> NodeAgent::remove_locked(std::string uid) {
  const PodRecord* known = store_.get(uid);
  if (known == nullptr) co_return errorf(ErrorKind::NotFound, "pod {} is not enrolled on this node", uid);
  const PodRecord record = *known;
  // Forget first: a ztunnel that reconnects from here on drains the pod through its snapshot.
  if (auto r = store_.remove(uid); !r) co_return std::move(r).error();
  net::UniqueFd netns;
  if (auto it = netns_.find(uid); it != netns_.end()) {
    netns = std::move(it->second);
    netns_.erase(it);
  }
  Result<void> outcome = ok();
  if (netns.valid()) {
    if (auto r = co_await run_rules(netns.get(), rules_for(record.spec), false); !r) {
      spdlog::warn("agent: pod {}: removing the in-pod rules: {}", uid, r.error());
      outcome = errorf(r.error().kind, "pod {}: removing the in-pod rules: {}", uid, r.error().context);
    }
  }
  if (auto r = co_await zds_->del(uid); !r) {
    spdlog::warn("agent: pod {}: del to ztunnel: {}", uid, r.error());
    if (outcome) outcome = errorf(r.error().kind, "pod {}: del to ztunnel: {}", uid, r.error().context);
  }
  ++stats_.unenrolled;
  spdlog::info("agent: pod {} ({}/{}) unenrolled", uid, record.spec.namespace_, record.spec.name);
  co_return outcome;
}

std::string NodeAgent::pods_json() const { return store_.to_json(); }

}  // namespace ambient::cni
