#pragma once
// EndpointPicker: one worker's load balancer over a service's endpoints (no locks: per worker, like Envoy's).
//
// Candidates: endpoints of the service on the waypoint's network, Healthy (unless the service allows all),
// with an address and a target port for the service port (the endpoint's own map, then Service.ports).
// Modes (WAYPOINT_LB): least-request (default, Envoy's waypoint default: the better of two random candidates by
// active requests / capacity), round-robin (per service, over candidates), random (weighted by capacity).
// `exclude` lists workload uids already tried by this request (retries fall over to another endpoint); they
// are skipped while another candidate exists.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>

#include "common/state/snapshot.h"
#include "waypoint/app/config.h"

namespace ambient::waypoint {

struct UpstreamTarget {
  const state::Workload* workload = nullptr;
  boost::asio::ip::tcp::endpoint address;  // the workload's ip:target port
  bool hbone = true;                       // HBONE to ip:15008 (captured pods); else plaintext TCP to `address`
  std::string identity;                    // the SAN its ztunnel presents for it (HBONE)
  std::string authority() const;           // "ip:port" / "[v6]:port"
};

class EndpointPicker {
 public:
  EndpointPicker(LoadBalancing mode, std::uint64_t seed) : mode_(mode), rng_(seed | 1) {}

  std::optional<UpstreamTarget> pick(const state::Snapshot& snapshot, const state::Service& service, std::uint16_t service_port,
                                     std::string_view network, std::span<const std::string> exclude = {});
  // A workload addressed directly (no service): its own IP and the requested port.
  static std::optional<UpstreamTarget> direct(const state::Workload& workload, std::uint16_t port);

  // Active requests per workload, for least-request. Callers pair every started() with one finished().
  void started(const std::string& uid) { ++active_[uid]; }
  void finished(const std::string& uid);
  std::uint64_t random() noexcept;  // xorshift64*

 private:
  LoadBalancing mode_;
  std::uint64_t rng_;
  std::unordered_map<std::string, std::uint32_t> active_;
  std::unordered_map<std::string, std::uint64_t> cursor_;  // round-robin position per service key
};

}  // namespace ambient::waypoint
