#pragma once
// KubePodSource: the node agent's Kubernetes pod source (Istio's cni/pkg/nodeagent informers.go). It watches
// the Pods of this node (fieldSelector spec.nodeName) and every Namespace, decides per pod whether it belongs
// in the mesh (enablement.h), and enrolls or unenrolls it through PodEvents, running pods included, without a
// restart:
//
//   pod/namespace informer --> reconcile(uid) --> enroll:   netns (the agent's record, else NetnsFinder's /proc
//                                                           scan, IP-checked) -> PodEvents::add_pod -> annotation
//                                             --> unenroll: PodEvents::remove_pod -> annotation removed
//
// The status annotation ambient.istio.io/redirection (JSON merge patch on pods/status, written only when it
// differs): "enabled" once the rules are in and a ztunnel acked the pod; "pending" while the rules are in but no
// ztunnel took it, or while the pod's netns cannot be found yet; removed on unenroll. istiod reads "enabled" to
// send the pod HBONE.
//
// Rules:
//  - Nothing is reconciled before both informers have synced once; then every cached pod is, and every pod the
//    agent enrolled from Kubernetes or the CNI plugin that no longer exists on this node is unenrolled.
//  - A namespace whose labels change requeues its pods; a pod update requeues that pod. One reconcile per uid
//    at a time (a change during one runs another after it).
//  - Failures (netns not found yet, no ztunnel, rules errors, API errors on the patch) are retried per pod with
//    backoff (retry_min doubling to retry_max); known pods are never dropped because of an API error: the
//    informers keep their caches (kube/informer.h).
//  - A pod that is Succeeded or Failed, or deleted, is unenrolled; a pod being deleted (deletionTimestamp) stays
//    enrolled until it is gone, so its last connections drain through ztunnel; a pod without an IP yet waits for
//    the update that gives it one.
//  - The CNI plugin's ADD (PodEvents::add_pod with source Cni) is admitted through admit(): the same decision,
//    from the cache or, for a pod the watch has not delivered yet, a GET; the plugin's netns path is a host path,
//    opened under host_mounts_path.
//
// Threads: everything runs on the agent's executor (single-threaded).
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "cni/agent/enablement.h"
#include "cni/agent/kube_objects.h"
#include "cni/agent/netns_finder.h"
#include "cni/api/pod_source.h"
#include "cni/kube/api_client.h"
#include "cni/kube/informer.h"

namespace ambient::cni {

inline constexpr std::string_view kRedirectionAnnotation = "ambient.istio.io/redirection";
inline constexpr std::string_view kDnsCaptureAnnotation = "ambient.istio.io/dns-capture";

struct KubePodSourceOptions {
  std::string node_name;              // NODE_NAME: whose pods are watched
  EnablementPolicy policy;
  std::string host_mounts_path;       // HOST_MOUNTS_PATH: "/host" in the agent's pod; "" = the agent sees the host
  std::chrono::milliseconds retry_min{500};
  std::chrono::milliseconds retry_max{30'000};
  kube::InformerOptions pods, namespaces;  // path and query are filled in by the source
};

struct KubePodSourceStats {
  std::uint64_t reconciles = 0, enrolled = 0, unenrolled = 0, retries = 0, netns_not_found = 0, patches = 0,
                patch_errors = 0, malformed_objects = 0, cni_admitted = 0, cni_skipped = 0;
};

class KubePodSource final : public PodSource {
 public:
  KubePodSource(boost::asio::any_io_executor ex, kube::ApiClient client, KubePodSourceOptions options);
  ~KubePodSource() override;

  Result<void> start(PodEvents& events) override;
  void stop() override;

  // The CNI plugin's ADD: nullopt = this pod stays out of the mesh (the ADD succeeds without enrolling); a spec =
  // enroll it (netns path under host_mounts_path, service account and options from the pod). An error (pod
  // unknown and the API unreachable) fails the ADD: the kubelet retries, nothing is let through unchecked.
  boost::asio::awaitable<Result<std::optional<PodSpec>>> admit(PodSpec spec);

  // Both informers have synced once (readiness).
  bool synced() const;
  const KubePodSourceStats& stats() const { return stats_; }
  const kube::Informer& pod_informer() const { return *pods_; }
  const kube::Informer& namespace_informer() const { return *namespaces_; }

 private:
  struct Tracked {
    std::optional<KubePod> pod;  // nullopt once deleted
    bool running = false, again = false;
    std::chrono::milliseconds backoff{0};
    std::unique_ptr<boost::asio::steady_timer> retry;
  };

  void on_pod(const boost::json::object& object, bool deleted);
  void on_namespace(const boost::json::object& object, bool deleted);
  void on_synced();
  void enqueue(const std::string& uid);
  void schedule_retry(const std::string& uid);
  boost::asio::awaitable<void> run(std::string uid);
  // One pass; returns whether it must be retried later.
  boost::asio::awaitable<bool> reconcile(std::string uid);
  boost::asio::awaitable<bool> set_annotation(const KubePod& pod, std::optional<std::string_view> value);
  PodSpec spec_for(const KubePod& pod) const;
  EnablementDecision decide(const KubePod& pod) const;
  std::string host_path(const std::string& path) const;
  Result<std::pair<PodNetns, net::UniqueFd>> find_netns(const std::string& uid, const std::vector<std::string>& ips);

  boost::asio::any_io_executor ex_;
  kube::ApiClient client_;
  KubePodSourceOptions options_;
  NetnsFinder finder_;
  // The last /proc scan: pods reconciled within a second of it share it (100 pods enrolled together scan once).
  std::map<std::string, PodNetns> scanned_;
  std::chrono::steady_clock::time_point scanned_at_{};
  PodEvents* events_ = nullptr;
  std::unique_ptr<kube::Informer> pods_, namespaces_;
  std::map<std::string, Tracked> tracked_;                   // uid -> pod
  std::map<std::string, std::set<std::string>> by_namespace_;  // namespace -> uids
  std::map<std::string, Labels, std::less<>> namespace_labels_;
  bool reconciling_ = false;  // both informers synced once
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // coroutines check it after each co_await
  KubePodSourceStats stats_;
};

}  // namespace ambient::cni
