#pragma once
// The seam between whatever tells the node agent about pods (its unix-socket API, the Kubernetes pod watch)
// and the agent that enrolls them.
//
//   PodSource  --add_pod / remove_pod-->  PodEvents (the agent)
//
// Contract:
//  - A source calls PodEvents only on the executor it was given, one call per request; calls may
//    overlap (two requests in flight), so the agent serializes what must be serialized.
//  - add_pod completes when the pod is enrolled (rules installed and, for Enabled, ztunnel acked) or
//    with the reason it is not. Adding a pod already enrolled with the same spec succeeds again.
//    remove_pod of an unknown uid is the agent's call (NotFound, or success).
//  - Error kinds the API maps to HTTP: InvalidArgument -> 400, NotFound -> 404, anything else -> 500.
//  - Lifetime: PodEvents must outlive the source and every call the source started; stop() stops new
//    calls but does not cancel one in progress (it finishes on the executor).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "cni/api/pod.h"
#include "common/base/result.h"

namespace ambient::cni {

// Implemented by the node agent.
class PodEvents {
 public:
  virtual ~PodEvents() = default;

  // `spec` has passed validate_pod_spec.
  virtual boost::asio::awaitable<Result<void>> add_pod(PodSpec spec, PodSourceKind source) = 0;
  virtual boost::asio::awaitable<Result<void>> remove_pod(std::string uid) = 0;
  // The enrolled pods as a JSON document (GET /pods), e.g. PodStore::to_json().
  virtual std::string pods_json() const = 0;
  // The record of an enrolled pod (nullptr: not enrolled); valid until the next co_await.
  virtual const PodRecord* find_pod(std::string_view /*uid*/) const { return nullptr; }
  // Every enrolled pod.
  virtual std::vector<PodRecord> known_pods() const { return {}; }
};

// Something that produces pod events: the API server, the Kubernetes watch (cni/agent/kube_pod_source.h).
class PodSource {
 public:
  virtual ~PodSource() = default;

  // Begins delivering events to `events` (see the lifetime rule above). Errors: the source could not
  // start (socket path unusable, ...). Call at most once per stop().
  virtual Result<void> start(PodEvents& events) = 0;
  // Stops delivering new events; idempotent. Call on the source's executor (or while it is not running).
  virtual void stop() = 0;
};

using PodSourcePtr = std::unique_ptr<PodSource>;

}  // namespace ambient::cni
