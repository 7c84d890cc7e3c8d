#pragma once
// Delta ADS (envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources) for the two
// types ztunnel asks for: istio.workload.Address and istio.security.Authorization.
//
// Protocol, per stream and per type (reference ztunnel.md 4.3):
//   client: first request for a type (no response_nonce; empty resource_names_subscribe = wildcard),
//           initial_resource_versions = name -> version it already holds
//   server: one response with every resource whose version differs from the client's, and
//           removed_resources = the client's names that no longer exist (sent even when empty, so the
//           client can ACK and become ready)
//   client: ACK (response_nonce, no error_detail) or NACK (response_nonce + error_detail.message)
//   server: on every state change, a response with only the added/changed resources and removed names
// Requests for other types, and later subscribe/unsubscribe requests (on-demand), are logged and ignored.
// Each response has a unique nonce and system_version_info = the state's version counter.
//
// Threads: grpc++ callback threads run the reactors; one dispatcher thread owns the per-stream
// subscription state and computes every response (so the push-delay fault sleeps there). A stream's
// writes are queued and written one at a time from the reactor.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <chrono>
#include <string>
#include <unordered_map>
#include <thread>
#include <variant>

#include "proto/discovery.grpc.pb.h"
#include "test/fake_istiod/config_store.h"
#include "test/fake_istiod/server_state.h"

namespace fake_istiod {

using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;

struct StreamCore;  // ads_service.cpp

class AdsService final : public envoy::service::discovery::v3::AggregatedDiscoveryService::CallbackService {
 public:
  AdsService(std::optional<std::string> token, Faults& faults, Stats& stats,
             std::shared_ptr<const Resources> initial);
  ~AdsService() override;  // stops the dispatcher (call after the server's Shutdown)

  grpc::ServerBidiReactor<DeltaDiscoveryRequest, DeltaDiscoveryResponse>* DeltaAggregatedResources(
      grpc::CallbackServerContext* ctx) override;

  // A new config state: every subscribed stream gets the delta.
  void publish(std::shared_ptr<const Resources> resources);
  // The faults changed what is served (invalid-resource): every subscribed stream gets the delta.
  void faults_changed();
  // Ends every open stream now with UNAVAILABLE (drop-streams fault).
  void drop_streams();

  // Reactor hooks (ads_service.cpp).
  void on_request(std::shared_ptr<StreamCore> core, DeltaDiscoveryRequest request);
  void on_stream_done(std::uint64_t id);

 private:
  struct RequestEvent {
    std::shared_ptr<StreamCore> core;
    DeltaDiscoveryRequest request;
  };
  struct StateEvent {
    std::shared_ptr<const Resources> resources;  // null: same config, faults changed
  };
  using Event = std::variant<RequestEvent, StateEvent>;

  void post(Event e);
  void run();                                        // the dispatcher thread
  void handle(RequestEvent& e);
  void push_all();                                   // deltas to every subscribed stream
  ResourceMap served(std::string_view type_url) const;  // config + fault extras (dispatcher thread)
  void send(StreamCore& core, std::string_view type_url, const ResourceMap& now,
            const std::map<std::string, std::string>& client_has, bool always);

  const std::optional<std::string> token_;
  Faults& faults_;
  Stats& stats_;
  // nonce -> when its response was queued, until the client answers it (dispatcher thread only).
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> sent_at_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  bool stopping_ = false;
  std::map<std::uint64_t, std::shared_ptr<StreamCore>> streams_;  // open streams, by id
  std::uint64_t next_stream_id_ = 1;

  // Dispatcher thread only.
  std::shared_ptr<const Resources> resources_;
  std::uint64_t state_version_ = 1;
  std::uint64_t next_nonce_ = 1;

  std::thread dispatcher_;  // last: starts after everything above is constructed
};

}  // namespace fake_istiod
