#include "cni/agent/kube_pod_source.h"

#include <algorithm>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace ambient::cni {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::string pod_path(const KubePod& pod) {
  return fmt::format("/api/v1/namespaces/{}/pods/{}", pod.namespace_, pod.name);
}

const std::string* annotation(const KubePod& pod, std::string_view key) {
  const auto it = pod.annotations.find(key);
  return it == pod.annotations.end() ? nullptr : &it->second;
}

// Records this source manages: enrolled from Kubernetes or by the CNI plugin (pods the CLI enrolled by hand
// are the operator's).
bool managed(const PodRecord& r) { return r.source == PodSourceKind::Kubernetes || r.source == PodSourceKind::Cni; }

}  // namespace

KubePodSource::KubePodSource(asio::any_io_executor ex, kube::ApiClient client, KubePodSourceOptions options)
    : ex_(std::move(ex)),
      client_(std::move(client)),
      options_(std::move(options)),
      finder_(options_.host_mounts_path + "/proc") {}

KubePodSource::~KubePodSource() { stop(); }

Result<void> KubePodSource::start(PodEvents& events) {
  if (options_.node_name.empty())
    return errorf(ErrorKind::InvalidArgument, "NODE_NAME is empty: the agent watches the pods of its own node");
  events_ = &events;
  kube::InformerOptions pods = options_.pods;
  pods.name = "pods";
  pods.path = "/api/v1/pods";
  pods.query = "fieldSelector=" + kube::query_escape("spec.nodeName=" + options_.node_name);
  kube::InformerOptions namespaces = options_.namespaces;
  namespaces.name = "namespaces";
  namespaces.path = "/api/v1/namespaces";
  namespaces.query.clear();
  pods_ = std::make_unique<kube::Informer>(
      ex_, client_, std::move(pods),
      kube::Informer::Handler{[this](const json::object& o) { on_pod(o, false); },
                              [this](const json::object& o) { on_pod(o, true); }, [this] { on_synced(); }});
  namespaces_ = std::make_unique<kube::Informer>(
      ex_, client_, std::move(namespaces),
      kube::Informer::Handler{[this](const json::object& o) { on_namespace(o, false); },
                              [this](const json::object& o) { on_namespace(o, true); }, [this] { on_synced(); }});
  namespaces_->start();
  pods_->start();
  spdlog::info("agent: watching the pods of node {} and all namespaces at {}", options_.node_name,
               client_.config().authority());
  return ok();
}

void KubePodSource::stop() {
  if (stopped_) return;
  stopped_ = true;
  *alive_ = false;
  if (pods_) pods_->stop();
  if (namespaces_) namespaces_->stop();
  for (auto& [uid, t] : tracked_)
    if (t.retry) t.retry->cancel();
}

bool KubePodSource::synced() const { return pods_ && namespaces_ && pods_->synced() && namespaces_->synced(); }

void KubePodSource::on_synced() {
  if (reconciling_ || !synced()) return;
  reconciling_ = true;
  std::set<std::string> uids;
  for (const auto& [uid, t] : tracked_) uids.insert(uid);
  // Pods enrolled before (by this agent, before a restart, or by the CNI plugin) that are not on this node
  // any more: unenroll them.
  for (const auto& record : events_->known_pods())
    if (managed(record)) uids.insert(record.spec.uid);
  spdlog::info("agent: pod and namespace caches synced: {} pods on this node, {} namespaces; reconciling {}",
               pods_->size(), namespaces_->size(), uids.size());
  for (const auto& uid : uids) enqueue(uid);
}

void KubePodSource::on_pod(const json::object& object, bool deleted) {
  auto pod = kube_pod_from_json(object);
  if (!pod) {
    ++stats_.malformed_objects;
    spdlog::warn("agent: ignoring a pod from the API: {}", pod.error());
    return;
  }
  const std::string uid = pod->uid;
  Tracked& t = tracked_[uid];
  if (deleted) {
    if (auto it = by_namespace_.find(pod->namespace_); it != by_namespace_.end()) it->second.erase(uid);
    t.pod.reset();
  } else {
    by_namespace_[pod->namespace_].insert(uid);
    t.pod = std::move(*pod);
  }
  if (reconciling_) enqueue(uid);
}

void KubePodSource::on_namespace(const json::object& object, bool deleted) {
  auto ns = kube_namespace_from_json(object);
  if (!ns) {
    ++stats_.malformed_objects;
    spdlog::warn("agent: ignoring a namespace from the API: {}", ns.error());
    return;
  }
  const auto it = namespace_labels_.find(ns->name);
  if (deleted) {
    if (it != namespace_labels_.end()) namespace_labels_.erase(it);
  } else {
    if (it != namespace_labels_.end() && it->second == ns->labels) return;  // labels unchanged: no pod is affected
    namespace_labels_[ns->name] = ns->labels;
  }
  if (!reconciling_) return;
  if (auto pods = by_namespace_.find(ns->name); pods != by_namespace_.end()) {
    spdlog::info("agent: namespace {} {}: requeueing its {} pods", ns->name, deleted ? "deleted" : "labels changed",
                 pods->second.size());
    for (const auto& uid : pods->second) enqueue(uid);
  }
}

void KubePodSource::enqueue(const std::string& uid) {
  if (stopped_) return;
  Tracked& t = tracked_[uid];
  if (t.running) {
    t.again = true;
    return;
  }
  if (t.retry) t.retry->cancel();
  t.running = true;
  asio::co_spawn(ex_, run(uid), asio::detached);
}

void KubePodSource::schedule_retry(const std::string& uid) {
  Tracked& t = tracked_[uid];
  t.backoff = t.backoff.count() == 0 ? options_.retry_min : std::min(options_.retry_max, t.backoff * 2);
  // Jitter in [0.8, 1.2] so pods that failed together do not retry together.
  static thread_local std::mt19937 rng{std::random_device{}()};
  const auto delay = std::chrono::milliseconds(static_cast<std::int64_t>(
      static_cast<double>(t.backoff.count()) * std::uniform_real_distribution<double>(0.8, 1.2)(rng)));
  if (!t.retry) t.retry = std::make_unique<asio::steady_timer>(ex_);
  t.retry->expires_after(delay);
  ++stats_.retries;
  t.retry->async_wait([this, uid, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive) return;
    enqueue(uid);
  });
}

asio::awaitable<void> KubePodSource::run(std::string uid) {
  const auto alive = alive_;
  for (;;) {
    const bool retry = co_await reconcile(uid);
    if (!*alive) co_return;
    Tracked& t = tracked_[uid];
    if (t.again) {
      t.again = false;
      continue;
    }
    t.running = false;
    if (retry) {
      schedule_retry(uid);
    } else {
      t.backoff = std::chrono::milliseconds(0);
      // A pod that is gone and has nothing left to undo is forgotten.
      if (!t.pod) tracked_.erase(uid);
    }
    co_return;
  }
}

EnablementDecision KubePodSource::decide(const KubePod& pod) const {
  static const Labels none;
  const auto ns = namespace_labels_.find(pod.namespace_);
  return decide_enablement({pod.namespace_, pod.labels, pod.annotations, pod.host_network},
                           ns == namespace_labels_.end() ? none : ns->second, options_.policy);
}

PodSpec KubePodSource::spec_for(const KubePod& pod) const {
  PodSpec spec;
  spec.uid = pod.uid;
  spec.name = pod.name;
  spec.namespace_ = pod.namespace_;
  spec.service_account = pod.service_account;
  spec.ips = pod.ips;
  if (const std::string* dns = annotation(pod, kDnsCaptureAnnotation)) {
    if (*dns == "true") spec.options.dns_capture = true;
    else if (*dns == "false") spec.options.dns_capture = false;
  }
  return spec;
}

std::string KubePodSource::host_path(const std::string& path) const {
  if (options_.host_mounts_path.empty() || path.starts_with(options_.host_mounts_path + "/")) return path;
  return options_.host_mounts_path + path;
}

asio::awaitable<bool> KubePodSource::reconcile(std::string uid) {
  ++stats_.reconciles;
  const auto alive = alive_;
  const auto it = tracked_.find(uid);
  const std::optional<KubePod> pod = it == tracked_.end() ? std::nullopt : it->second.pod;
  const PodRecord* record = events_->find_pod(uid);
  const bool enrolled = record != nullptr && managed(*record);

  std::string why_out;
  if (!pod) why_out = "the pod is gone from this node";
  else if (pod->terminal()) why_out = fmt::format("the pod has {}", pod->phase);
  else if (auto d = decide(*pod); !d.enroll) why_out = d.reason;

  if (!why_out.empty()) {
    if (enrolled) {
      auto r = co_await events_->remove_pod(uid);
      if (!*alive) co_return false;
      if (!r && r.error().kind != ErrorKind::NotFound) {
        spdlog::warn("agent: unenrolling pod {} ({}): {}", uid, why_out, r.error());
        co_return true;
      }
      ++stats_.unenrolled;
      spdlog::info("agent: pod {} unenrolled: {}", pod ? pod->key() : uid, why_out);
    }
    if (pod && annotation(*pod, kRedirectionAnnotation) != nullptr) co_return !co_await set_annotation(*pod, std::nullopt);
    co_return false;
  }

  // Enroll. A pod being deleted is not enrolled anew (it keeps an enrollment it has until it is gone).
  if (pod->terminating && !enrolled) co_return false;
  if (pod->ips.empty()) co_return false;  // the update that gives it an IP requeues it
  PodSpec spec = spec_for(*pod);
  if (enrolled) {
    spec.netns = record->spec.netns;  // the netns the agent already holds for this pod
    if (record->spec.service_account.size() && spec.service_account.empty()) spec.service_account = record->spec.service_account;
  } else {
    auto found = find_netns(uid, pod->ips);
    if (!found) {
      ++stats_.netns_not_found;
      spdlog::info("agent: pod {} ({}): network namespace not found yet: {}; marked pending, retrying", pod->key(), uid,
                   found.error());
      if (const std::string* a = annotation(*pod, kRedirectionAnnotation); a == nullptr || *a != "pending")
        (void)co_await set_annotation(*pod, "pending");
      co_return true;
    }
    spec.netns = found->first.path;
  }
  const PodSourceKind source = enrolled ? record->source : PodSourceKind::Kubernetes;
  // Enrolled and acked before (also across an agent restart, before any ztunnel reconnects): ztunnel's proxy of
  // the pod outlives the agent's connection, so the pod stays enabled; asking again could only flap the
  // annotation to pending, and istiod would stop sending the pod HBONE meanwhile.
  const bool acked = enrolled && record->status == PodStatus::Enabled && record->spec.ips == spec.ips;
  Result<void> r = ok();
  if (!acked) r = co_await events_->add_pod(spec, source);
  if (!*alive) co_return false;
  const bool partial = !r && r.error().kind == ErrorKind::Unsupported;  // rules in, no ztunnel took it
  if (!r && !partial) {
    spdlog::warn("agent: enrolling pod {} ({}): {}", pod->key(), uid, r.error());
    co_return true;
  }
  if (r && !enrolled) {
    ++stats_.enrolled;
    spdlog::info("agent: pod {} ({}) enrolled from the Kubernetes watch: {}", pod->key(), uid, decide(*pod).reason);
  }
  const std::string_view want = r ? "enabled" : "pending";
  // The annotation as the cache has it now (it may have changed while we waited). A copy: the cache entry may
  // go while the patch is in flight.
  const auto now = tracked_.find(uid);
  const KubePod current = now != tracked_.end() && now->second.pod ? *now->second.pod : *pod;
  bool patched = true;
  if (const std::string* a = annotation(current, kRedirectionAnnotation); a == nullptr || *a != want)
    patched = co_await set_annotation(current, want);
  co_return partial || !patched;
}

Result<std::pair<PodNetns, net::UniqueFd>> KubePodSource::find_netns(const std::string& uid, const std::vector<std::string>& ips) {
  const auto now = std::chrono::steady_clock::now();
  // A pod missing from a recent scan may have started since: scan again.
  if (now - scanned_at_ > std::chrono::seconds(1) || !scanned_.contains(uid)) {
    scanned_ = finder_.scan();
    scanned_at_ = now;
  }
  return finder_.open(scanned_, uid, ips);
}

asio::awaitable<bool> KubePodSource::set_annotation(const KubePod& pod, std::optional<std::string_view> value) {
  json::object annotations;
  if (value) annotations[kRedirectionAnnotation] = json::string(*value);
  else annotations[kRedirectionAnnotation] = nullptr;
  const json::object body{{"metadata", json::object{{"annotations", std::move(annotations)}}}};
  ++stats_.patches;
  auto r = co_await client_.merge_patch(pod_path(pod) + "/status", json::serialize(body));
  if (!r) {
    if (r.error().kind == ErrorKind::NotFound) co_return true;  // the pod is gone: nothing to annotate
    ++stats_.patch_errors;
    spdlog::warn("agent: pod {}: setting {}={}: {}", pod.key(), kRedirectionAnnotation, value ? *value : "(removed)",
                 r.error());
    co_return false;
  }
  co_return true;
}

asio::awaitable<Result<std::optional<PodSpec>>> KubePodSource::admit(PodSpec spec) {
  std::optional<KubePod> pod;
  if (auto it = tracked_.find(spec.uid); it != tracked_.end() && it->second.pod) pod = it->second.pod;
  if (!pod) {
    // The watch may not have delivered a pod the kubelet is starting right now: ask the API.
    auto got = co_await client_.get(fmt::format("/api/v1/namespaces/{}/pods/{}", spec.namespace_, spec.name));
    if (!got) co_return errorf(got.error().kind, "pod {}/{}: reading it from the API server: {}", spec.namespace_, spec.name, got.error().context);
    if (!got->is_object()) co_return errorf(ErrorKind::Parse, "pod {}/{}: the API server sent no object", spec.namespace_, spec.name);
    auto parsed = kube_pod_from_json(got->as_object());
    if (!parsed) co_return std::move(parsed).error();
    pod = std::move(*parsed);
  }
  if (!spec.uid.empty() && pod->uid != spec.uid)
    co_return errorf(ErrorKind::InvalidArgument, "pod {}/{}: the CNI names uid {}, the API server {}", spec.namespace_, spec.name,
                     spec.uid, pod->uid);
  if (!namespace_labels_.contains(pod->namespace_)) {
    auto got = co_await client_.get("/api/v1/namespaces/" + pod->namespace_);
    if (!got) co_return errorf(got.error().kind, "namespace {}: reading it from the API server: {}", pod->namespace_, got.error().context);
    if (got->is_object())
      if (auto ns = kube_namespace_from_json(got->as_object()); ns) namespace_labels_[ns->name] = ns->labels;
  }
  const auto d = decide(*pod);
  if (!d.enroll) {
    ++stats_.cni_skipped;
    spdlog::debug("agent: CNI ADD of pod {}: not enrolled: {}", pod->key(), d.reason);
    co_return std::optional<PodSpec>();
  }
  ++stats_.cni_admitted;
  PodSpec admitted = spec_for(*pod);
  admitted.netns = host_path(spec.netns);
  if (admitted.ips.empty()) admitted.ips = spec.ips;  // the CNI result knows the IPs before the API does
  co_return std::optional<PodSpec>(std::move(admitted));
}

}  // namespace ambient::cni
