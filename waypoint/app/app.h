#pragma once
// App: the waypoint's process. The control thread (the caller of run()) owns configuration, the state snapshot,
// the route/policy config and its reloads, the waypoint's certificate (IdentityManager), the admin (15000),
// metrics (15020) and readiness (15021) servers and shutdown; N worker threads each run one io_context with
// their own WaypointProxy (HBONE listener with SO_REUSEPORT, upstream pool, load balancer). L7 state and
// certificates reach workers only as immutable snapshots posted to their io_context.
//
// State source (exactly one): the local config file (LOCAL_XDS_PATH), or istiod's Delta ADS (XDS_ADDRESS,
// `istio.workload.Address` only: the waypoint's L7 policies come from its route files). With xDS, readiness
// waits for the first Address response, and every push that changes something builds a new L7State from the
// new snapshot and the current routes. Certificate: the built-in CA, or istiod's CA (CA_ADDRESS).
//
// Reload: every reload_interval the control thread compares the files' (size, mtime) with the last load; on a
// change it re-reads everything (the local config, or with xDS the latest push, and the route files). A file
// that fails to parse or validate keeps the previous good state and logs the reason with file, line and field;
// live traffic is never interrupted (tunnels keep the state they started with, the next tunnel takes the new one).
// Shutdown (SIGTERM, SIGINT, POST /quitquitquit): stop accepting, GOAWAY, live tunnels may finish until
// CONNECTION_TERMINATION_DEADLINE, then they are closed and the process exits 0.
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/admin/control_servers.h"
#include "common/admin/drain.h"
#include "common/admin/readiness.h"
#include "common/base/result.h"
#include "common/identity/identity_manager.h"
#include "common/net/heap_trimmer.h"
#include "common/state/snapshot_builder.h"
#include "common/telemetry/metrics.h"
#include "common/xds/ads_client.h"
#include "waypoint/app/config.h"
#include "waypoint/proxy/request_telemetry.h"
#include "waypoint/proxy/waypoint_proxy.h"

namespace ambient::waypoint {

class App {
 public:
  explicit App(AppConfig config);
  ~App();

  Result<void> start();
  int run();
  void shutdown();  // any thread

  std::uint16_t hbone_port() const { return config_.hbone_port; }
  std::optional<std::uint16_t> proxy_protocol_port() const { return config_.proxy_protocol_port; }
  boost::asio::ip::tcp::endpoint admin_endpoint() const { return admin_ep_; }
  boost::asio::ip::tcp::endpoint metrics_endpoint() const { return metrics_ep_; }
  boost::asio::ip::tcp::endpoint readiness_endpoint() const { return readiness_ep_; }
  const WaypointCounters& counters() const { return counters_; }

 private:
  struct Worker {
    boost::asio::io_context io{1};
    telemetry::MetricsShard* shard = nullptr;
    std::shared_ptr<WaypointProxy> proxy;
    std::thread thread;
  };
  // (size, mtime) of every config file, directories expanded: a change triggers a reload.
  using FileStamps = std::map<std::string, std::pair<std::uintmax_t, std::int64_t>>;
  FileStamps stamp_files() const;
  // Re-reads the files into a new L7State: workloads and services from the local config (with xDS: the latest
  // push, snapshot_) and the route files. On success snapshot_ and routes_ are the new ones; on an error
  // (naming file, line and field) nothing changes.
  Result<std::shared_ptr<const L7State>> load_state();
  // XDS_ADDRESS: the Delta ADS client (started by start()); `config_task` is released by the first Address response.
  Result<void> start_xds(admin::Readiness::Token config_task);
  // A push changed workloads or services: the new snapshot with the current routes, published.
  void on_xds_change();
  WaypointSelf self() const { return {config_.ns, config_.name, config_.gateway_name, config_.network}; }
  void publish(std::shared_ptr<const L7State> state);
  void publish(std::shared_ptr<const identity::CertBundle> certs);
  void schedule_reload();
  std::string config_dump() const;
  void begin_drain();

  AppConfig config_;
  std::string identity_;  // spiffe://td/ns/NS/sa/SA
  boost::asio::io_context control_{1};
  telemetry::Registry registry_;
  std::unique_ptr<RequestMetrics> request_metrics_;
  WaypointCounters counters_;
  std::shared_ptr<const L7State> state_;
  std::shared_ptr<const state::Snapshot> snapshot_;  // state_'s workloads and services (with xDS: the latest push)
  std::shared_ptr<const WaypointConfig> routes_;     // state_'s routes and policies (the last good route files)
  state::SnapshotBuilder builder_;                   // xDS: the resources pushed so far
  std::unique_ptr<xds::AdsClient> ads_;              // XDS_ADDRESS set: the state source
  FileStamps stamps_;
  std::uint64_t reloads_ = 0, reload_failures_ = 0;
  std::string last_reload_error_;
  std::unique_ptr<identity::IdentityManager> identities_;
  std::shared_ptr<net::HeapTrimmer> trimmer_;  // frees the heap a connection storm left behind
  std::optional<admin::Readiness::Token> identity_task_;
  std::vector<std::unique_ptr<Worker>> workers_;
  admin::Readiness readiness_;
  std::unique_ptr<admin::ControlServers> servers_;  // admin 15000, metrics 15020, readiness 15021
  boost::asio::signal_set signals_{control_};
  boost::asio::steady_timer reload_timer_{control_};
  std::unique_ptr<admin::Drain> drain_;
  bool draining_ = false;
  boost::asio::ip::tcp::endpoint admin_ep_, metrics_ep_, readiness_ep_;
};

}  // namespace ambient::waypoint
