#pragma once
// NodeAgent: the CNI node agent's core (reference cni-charts.md 1-5). It enrolls pods, running ones
// included, without restarting them: in-pod redirection rules installed inside the pod's netns, then the
// netns fd handed to ztunnel over ZDS. Pod sources (the API server for the CNI plugin and the CLI; later a
// Kubernetes watch) call it through PodEvents.
//
// Enroll (add_pod), in this order, as Istio's AddPodToMesh:
//  1. open the pod's netns (must be a network namespace); 2. install the rules (idempotent); a failure here
//  enrolls nothing; 3. record the pod as pending (persisted); 4. Add to the newest ztunnel and wait for its
//  ack -> enabled (persisted). Without a ztunnel, or on a NACK, the pod stays pending (its traffic is held:
//  fail closed) and add_pod fails with "partial add error: ..."; pending pods are sent again whenever a
//  ztunnel connection completes its snapshot.
// Unenroll (remove_pod): forget the pod (so a reconnecting ztunnel's snapshot drains it), remove the rules
// (the netns is left exactly as before enrollment), Del to every ztunnel.
// Start-up (a restarted agent loses nothing): load the store, reopen each pod's netns (a path that is gone or
// now names another netns drops the record), re-check its rules and repair drift, then serve ZDS: every
// ztunnel that connects receives every known pod as its snapshot.
//
// Threads: everything runs on the agent's executor; rules commands (fork/exec of iptables, nft, ip) run on a
// small blocking pool so that 100 pods enrolled at once are installed in parallel. Overlapping calls for the
// same uid are serialised (the second waits for the first).
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "cni/api/pod_source.h"
#include "cni/api/pod_store.h"
#include "cni/rules/inpod_rules.h"
#include "cni/rules/rule_options.h"
#include "cni/zds/zds_server.h"
#include "common/net/fd.h"

namespace ambient::cni {

struct NodeAgentOptions {
  ZdsServerOptions zds;
  PodStoreOptions store;
  Backend backend = Backend::Iptables;
  // The agent's defaults: DNS capture off (ztunnel has no DNS proxy yet); syn_only on, so connections a running
  // pod already has keep flowing when it is enrolled (rule_options.h).
  RuleOptions rules = [] {
    RuleOptions o;
    o.dns_capture = false;
    o.syn_only = true;
    return o;
  }();
  bool reconcile_rules_on_startup = true;
  std::string default_service_account = "default";  // for a pod whose source did not name one
  unsigned rules_threads = 4;
};

struct NodeAgentStats {
  std::uint64_t enrolled = 0, unenrolled = 0, add_failures = 0, pending_retries = 0, repaired = 0, dropped = 0;
};

class NodeAgent final : public PodEvents {
 public:
  NodeAgent(boost::asio::any_io_executor ex, NodeAgentOptions options);
  ~NodeAgent() override;

  // Loads and reconciles the store, starts ZDS, then starts `sources` (which call this agent).
  Result<void> start(std::vector<PodSourcePtr> sources);
  void stop();

  boost::asio::awaitable<Result<void>> add_pod(PodSpec spec, PodSourceKind source) override;
  boost::asio::awaitable<Result<void>> remove_pod(std::string uid) override;
  std::string pods_json() const override;
  const PodRecord* find_pod(std::string_view uid) const override { return store_.get(uid); }
  std::vector<PodRecord> known_pods() const override { return store_.all(); }

  // With Kubernetes as the source of truth, the CNI plugin's ADDs go through this first: nullopt = the pod
  // stays out of the mesh (the ADD succeeds), a spec = enroll that (completed from the API), an error = the ADD
  // fails (fail closed). Without it every ADD is enrolled (no cluster: the plugin's caller decided).
  using CniAdmission = std::function<boost::asio::awaitable<Result<std::optional<PodSpec>>>(PodSpec)>;
  void set_cni_admission(CniAdmission admission) { cni_admission_ = std::move(admission); }
  // ZDS is being served (start() succeeded and stop() was not called).
  bool serving() const { return zds_ != nullptr && !stopped_; }

  const NodeAgentStats& stats() const { return stats_; }
  const PodStore& store() const { return store_; }

 private:
  RuleOptions rules_for(const PodSpec& spec) const;
  boost::asio::awaitable<Result<void>> run_rules(int netns_fd, RuleOptions options, bool install);
  boost::asio::awaitable<Result<void>> add_locked(PodSpec spec, PodSourceKind source);
  boost::asio::awaitable<Result<void>> remove_locked(std::string uid);
  boost::asio::awaitable<Result<void>> send_to_ztunnel(std::string uid);
  boost::asio::awaitable<void> retry_pending();
  boost::asio::awaitable<void> lock(std::string uid);
  void unlock(const std::string& uid);
  Result<void> reconcile_store();
  std::vector<ZdsSnapshotPod> snapshot() const;

  boost::asio::any_io_executor ex_;
  NodeAgentOptions options_;
  PodStore store_;
  InpodRules rules_;
  std::unique_ptr<ZdsServer> zds_;
  std::vector<PodSourcePtr> sources_;
  std::map<std::string, net::UniqueFd> netns_;  // uid -> open netns of an enrolled pod
  std::set<std::string> busy_;                  // uids with an add or remove in progress
  boost::asio::thread_pool rules_pool_;
  NodeAgentStats stats_;
  CniAdmission cni_admission_;
  bool retrying_ = false;
  bool stopped_ = false;
};

}  // namespace ambient::cni
