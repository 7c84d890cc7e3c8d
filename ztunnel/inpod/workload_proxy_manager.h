#pragma once
// WorkloadProxyManager (control thread): the enrolled pods ZDS reports and their per-pod proxies
// (reference ztunnel.md 6). It implements PodWorkloads for the ZdsClient and starts or stops proxies through
// a PodProxyHost (the App: one Proxy per worker, listeners inside the pod's netns).
//
// Per pod, keyed by uid:
//  - Add with the netns (dev, ino) of the running proxy: nothing to do (idempotent). With another netns (the
//    sandbox was re-created): the old proxy is drained at once and a new one started.
//  - A proxy that fails to start (a port still held, the netns gone) is NACKed ("failure to start proxy: ..."),
//    kept as pending and retried every retry_interval (5 s) until it starts or the pod is deleted.
//  - Del, and pods missing from a completed snapshot, drain immediately (the pod is gone).
// Ready = a connection's snapshot is complete and no pod is pending. Losing the connection makes it not ready;
// the pod proxies keep running. Not ready comes with the reason: "no node agent snapshot yet" or the pending pods.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/net/netns.h"
#include "ztunnel/inpod/zds_client.h"

namespace ambient::ztunnel {

struct PodProxySpec {
  std::string uid;
  zds::WorkloadInfo info;
  std::string identity;                        // spiffe://<trust domain>/ns/<ns>/sa/<sa>
  std::shared_ptr<const net::UniqueFd> netns;  // shared by the pod's proxies on every worker
};

// Starts and stops the proxies of one pod (on every worker).
class PodProxyHost {
 public:
  virtual ~PodProxyHost() = default;
  // Binds the pod's listeners on every worker; on error nothing of the pod is left running.
  virtual boost::asio::awaitable<Result<void>> start_pod(PodProxySpec spec) = 0;
  // Immediate drain of the pod's proxies on every worker.
  virtual boost::asio::awaitable<void> stop_pod(std::string uid) = 0;
  // The set of pods (and so of identities) changed.
  virtual void pods_changed() = 0;
};

struct PodState {
  PodProxySpec spec;
  net::NetnsId netns_id;
  bool running = false;     // false = pending (start failed, retried)
  std::string last_error;
  std::chrono::steady_clock::time_point added;
};

class WorkloadProxyManager final : public PodWorkloads {
 public:
  WorkloadProxyManager(boost::asio::any_io_executor ex, std::string trust_domain, PodProxyHost& host,
                       std::function<void(bool ready, const std::string& why_not)> on_ready,
                       std::chrono::milliseconds retry_interval = std::chrono::seconds(5));

  boost::asio::awaitable<Result<void>> add(std::string uid, zds::WorkloadInfo info, net::UniqueFd netns) override;
  boost::asio::awaitable<void> remove(std::string uid) override;
  boost::asio::awaitable<void> reconcile(std::set<std::string> seen) override;
  void connection_changed(bool connected, bool snapshot_done) override;

  const std::map<std::string, PodState>& pods() const { return pods_; }
  std::set<std::string> identities() const;
  bool ready() const { return ready_; }
  std::size_t pending() const;
  void stop();

 private:
  boost::asio::awaitable<Result<void>> start(PodState& pod);
  void schedule_retry();
  boost::asio::awaitable<void> retry_pending();
  void update_ready();

  boost::asio::any_io_executor ex_;
  std::string trust_domain_;
  PodProxyHost& host_;
  std::function<void(bool, const std::string&)> on_ready_;
  std::string why_not_;  // the last reason reported with ready == false
  std::chrono::milliseconds retry_interval_;
  std::map<std::string, PodState> pods_;
  boost::asio::steady_timer retry_timer_;
  bool retry_armed_ = false;
  bool snapshot_done_ = false;
  bool ready_ = false;
  bool stopped_ = false;
};

}  // namespace ambient::ztunnel
