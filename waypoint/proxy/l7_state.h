#pragma once
// L7State: what every worker decides requests against, built on the control thread from the state snapshot
// (workloads, services) and the route/policy config, then shared read-only (immutable once built).
//
// - Routes attach to a Service by parentRefs (kind Service, name = the Service's name, namespace = the
//   parentRef's or the route's); a parentRef with a port attaches only to that service port. One RouteTable per
//   (service, port) holds every route attached there, in Gateway API precedence.
// - Policies attach by targetRefs: kind Service (name, policy namespace) applies to that service's requests;
//   kind Gateway naming this waypoint applies to every request it serves (Istio's waypoint semantics).
// - decide() is pure: authorization first (Istio runs RBAC before the router), then the route, then the backend
//   choice. The endpoint itself is picked later, by the worker's load balancer (endpoint_picker.h).
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/rbac/authorization.h"
#include "common/state/snapshot.h"
#include "waypoint/authz/l7_authorization.h"
#include "waypoint/config/waypoint_config.h"
#include "waypoint/routing/route_table.h"

namespace ambient::waypoint {

struct WaypointSelf {
  std::string ns, name, gateway, network;
};

// Where a tunnel's CONNECT :authority points.
struct Destination {
  const state::Service* service = nullptr;    // a service VIP
  const state::Workload* workload = nullptr;  // else a workload IP (direct)
  std::uint16_t port = 0;                     // the service port or the workload's port
  std::string app_protocol;                   // the service port's app_protocol name ("HTTP", "HTTP2", "GRPC", "TCP", ...), "" unknown
};

struct RequestDecision {
  enum class Kind : std::uint8_t {
    Forward,   // to `service`:`port` (or the direct workload) with `rule`'s filters
    Redirect,  // answer the rule's RequestRedirect
    Deny,      // 403 RBAC: access denied
    NoBackend, // 500: the matched rule has no usable backend
  };
  Kind kind = Kind::Forward;
  const state::Service* service = nullptr;    // Forward via a service
  const state::Workload* workload = nullptr;  // Forward to a direct workload
  std::uint16_t port = 0;                     // service port (or workload port)
  const RouteRule* rule = nullptr;            // the matched rule, if any
  const RouteMatch* match = nullptr;          // the match that held (its path prefix drives ReplacePrefixMatch)
  std::string route;                          // "ns/name" of the matched route, "" for the default route
  rbac::Decision authz;                       // the authorization decision (policy named)
  std::string reason;                         // for logs when not Forward
};

class L7State {
 public:
  // Fails (naming the service and route) when a route table cannot be built, e.g. over its limits.
  static Result<std::shared_ptr<const L7State>> build(std::shared_ptr<const state::Snapshot> snapshot,
                                                      std::shared_ptr<const WaypointConfig> config, WaypointSelf self);

  const state::Snapshot& snapshot() const { return *snapshot_; }
  const WaypointConfig& config() const { return *config_; }
  const WaypointSelf& self() const { return self_; }

  // The CONNECT :authority ("ip:port", "[v6]:port") to a destination. Unknown addresses are errors (the tunnel
  // is refused: a waypoint serves only what the state names).
  Result<Destination> resolve(std::string_view authority) const;
  // Routes attached to (service, port); null when none.
  const RouteTable* routes(const state::Service& service, std::uint16_t port) const;
  // Policies that apply to requests for `dst`: the Gateway's plus the service's.
  std::span<const L7Policy> policies(const Destination& dst) const;
  // A backendRef's service ("ns/name" of a Service resource: the Service's name field).
  const state::Service* service_by_name(std::string_view ns, std::string_view name) const;

  RequestDecision decide(const Destination& dst, const RequestView& view, const L7Request& authz_request,
                         std::uint64_t random) const;

 private:
  struct ServiceEntry {
    std::map<std::uint16_t, RouteTable> by_port;  // each service port with attached routes
    std::vector<L7Policy> policies;               // Gateway policies first, then the service's
  };
  std::shared_ptr<const state::Snapshot> snapshot_;
  std::shared_ptr<const WaypointConfig> config_;
  WaypointSelf self_;
  std::map<const state::Service*, ServiceEntry> services_;
  std::map<std::string, const state::Service*, std::less<>> by_name_;  // "ns/name"
  std::vector<L7Policy> gateway_policies_;
};

}  // namespace ambient::waypoint
