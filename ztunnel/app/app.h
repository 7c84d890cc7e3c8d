#pragma once
// App: ztunnel's process. The control thread (the caller of run()) owns configuration, state snapshots,
// certificates, the admin (15000), metrics (15020) and readiness (15021) servers and shutdown; N worker
// threads each run one io_context with their own Proxy (listeners with SO_REUSEPORT, HBONE pool): in
// dedicated mode one Proxy per worker in ztunnel's netns; in shared (in-pod) mode one Proxy per enrolled pod
// per worker, its sockets inside the pod's netns, pods added and removed over ZDS (ztunnel/inpod/).
// State reaches workers only as immutable snapshots posted to their io_context.
//
// Shutdown (SIGTERM, SIGINT, POST /quitquitquit): workers stop accepting and send GOAWAY on pooled
// connections; live connections may finish until CONNECTION_TERMINATION_DEADLINE; then the rest are
// closed and the process exits 0.
#include <atomic>
#include <memory>
#include <set>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/admin/control_servers.h"
#include "common/admin/drain.h"
#include "common/admin/readiness.h"
#include "common/base/result.h"
#include "common/net/heap_trimmer.h"
#include "common/state/snapshot_builder.h"
#include "common/telemetry/metrics.h"
#include "common/telemetry/tcp_metrics.h"
#include "common/xds/ads_client.h"
#include "ztunnel/app/config.h"
#include "common/identity/identity_manager.h"
#include "ztunnel/inpod/workload_proxy_manager.h"
#include "ztunnel/inpod/zds_client.h"
#include "ztunnel/proxy/proxy.h"

namespace ambient::ztunnel {

class App final : private PodProxyHost {
 public:
  explicit App(Config config);
  ~App();

  // Loads state and identities, binds every listener, starts the workers. Errors name what failed.
  Result<void> start();
  // Runs the control thread until shutdown completes. Returns the process exit code.
  int run();
  // Begins a graceful shutdown (any thread).
  void shutdown();
  // Pooled HBONE connections over all workers (any thread; waits for each worker to answer).
  hbone::PoolStats pool_stats();
  const ProxyCounters& counters() const { return counters_; }
  const Config& config() const { return config_; }

  // Bound addresses (for tests and logs): data-plane listeners of worker 0, then admin, metrics, readiness.
  const std::vector<boost::asio::ip::tcp::endpoint>& data_plane_endpoints() const { return data_plane_; }
  boost::asio::ip::tcp::endpoint admin_endpoint() const { return admin_ep_; }
  boost::asio::ip::tcp::endpoint metrics_endpoint() const { return metrics_ep_; }
  boost::asio::ip::tcp::endpoint readiness_endpoint() const { return readiness_ep_; }
  boost::asio::io_context& control() { return control_; }

 private:
  // Everything but `io` and `thread` is touched only on the worker's thread once it runs.
  struct Worker {
    boost::asio::io_context io{1};
    telemetry::MetricsShard* shard = nullptr;
    std::shared_ptr<Proxy> proxy;                                   // dedicated mode
    std::unordered_map<std::string, std::shared_ptr<Proxy>> pods;  // shared mode: pod uid -> its proxy here
    std::shared_ptr<const state::Snapshot> snapshot;               // the latest, for proxies started later
    std::shared_ptr<const identity::CertBundle> certs;
    std::thread thread;
    template <typename F>
    void for_each_proxy(F&& f) {
      if (proxy) f(*proxy);
      for (auto& [uid, p] : pods) f(*p);
    }
  };
  // Runs fn on the worker: posted once its thread runs, inline before.
  template <typename F>
  void on_worker(Worker& w, F fn) {
    if (w.thread.joinable()) boost::asio::post(w.io, std::move(fn));
    else fn();
  }
  // PodProxyHost (in-pod mode).
  boost::asio::awaitable<Result<void>> start_pod(PodProxySpec spec) override;
  boost::asio::awaitable<void> stop_pod(std::string uid) override;
  boost::asio::awaitable<Result<void>> start_pod_on(Worker* worker, PodProxySpec spec);  // on the worker
  boost::asio::awaitable<void> stop_pod_on(Worker* worker, std::string uid);             // on the worker
  void pods_changed() override { update_identities(); }
  Result<void> check_inpod_capabilities();
  std::string inpod_dump() const;
  Result<void> start_xds(admin::Readiness::Token state_task);
  // Certificates wanted: the dedicated workload's, the enrolled pods', and (NODE_NAME) the node's HBONE workloads'.
  void update_identities();
  void publish(std::shared_ptr<const state::Snapshot> snapshot);
  void publish(std::shared_ptr<const identity::CertBundle> certs);
  std::string config_dump() const;
  void begin_drain();

  Config config_;
  boost::asio::io_context control_{1};
  telemetry::Registry registry_;
  std::unique_ptr<telemetry::IstioTcpMetrics> tcp_metrics_;
  ProxyCounters counters_;
  state::SnapshotBuilder builder_;
  std::shared_ptr<const state::Snapshot> snapshot_ = state::Snapshot::empty();
  std::unique_ptr<identity::IdentityManager> identities_;
  std::shared_ptr<net::HeapTrimmer> trimmer_;  // frees the heap a connection storm left behind
  std::string local_identity_;                            // its first certificate releases identity_task_
  std::optional<admin::Readiness::Token> identity_task_;
  std::unique_ptr<xds::AdsClient> ads_;  // XDS_ADDRESS set: the state source
  std::set<std::string> prefetched_;     // identities last asked of the IdentityManager
  std::unique_ptr<WorkloadProxyManager> inpod_;  // shared mode: enrolled pods
  std::unique_ptr<ZdsClient> zds_;               // shared mode: the node agent connection
  std::optional<admin::Readiness::Token> inpod_task_;
  std::vector<std::unique_ptr<Worker>> workers_;
  admin::Readiness readiness_;
  std::unique_ptr<admin::ControlServers> servers_;  // admin 15000, metrics 15020, readiness 15021
  boost::asio::signal_set signals_{control_};
  std::unique_ptr<admin::Drain> drain_;
  bool draining_ = false;
  std::vector<boost::asio::ip::tcp::endpoint> data_plane_;
  boost::asio::ip::tcp::endpoint admin_ep_, metrics_ep_, readiness_ep_;
};

}  // namespace ambient::ztunnel
