#pragma once
// The waypoint's configuration from Kubernetes-shaped YAML: Gateway API HTTPRoute (v1, v1beta1) and GRPCRoute
// (v1), Istio AuthorizationPolicy (security.istio.io v1, v1beta1). Pure: no I/O but reading the named files.
//
// Invariants:
// - Fail closed: inside `spec` an unknown field, an unsupported feature (filter type, CUSTOM action, selector,
//   requestPrincipals, ...) or a bad value refuses the whole load; nothing is silently dropped. Loading is
//   all-or-nothing, so the caller keeps its previous good config on error.
// - Every error reads `<source>:<line>: <Kind> <ns>/<name>: spec.<field path>: <why>` (line 1-based, of the
//   offending node; `<Kind> <ns>/<name>: ` is left out until the name is known). YAML syntax errors read
//   `<source>:<line>: invalid YAML: <message>`. Nothing throws out of this API.
// - Routes are validated through RouteTable::build, so a config that loads always builds a route table
//   (per route; a table over many routes still has its own kMaxRoutes bound).
// - GRPCRoutes become HttpRoutes (grpc = true): a method match becomes a path match on "/<service>/<method>"
//   plus method POST.
// - Namespaces left out of parentRefs and backendRefs are filled with the route's namespace; a route without
//   creationTimestamp gets created = kUntimestampedBase + its document index (over all files of one load), so it
//   sorts after every timestamped route and in file order.
// Limits: a file of at most 4 MiB (kMaxConfigFileBytes), at most 1000 documents per file (counted while
// streaming, before any tree is built); YAML aliases may expand a file to at most 2 x its bytes + 64 Ki nodes, and
// as many bytes of strings, and maps and lists nest at most 100 deep (common/state/yaml_walker.h: refused with
// ResourceExhausted, naming the line); route table limits (kMax* in route_table.h) apply.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "waypoint/authz/l7_authorization.h"
#include "waypoint/routing/http_route.h"

namespace ambient::waypoint {

inline constexpr std::size_t kMaxConfigFileBytes = 4 * 1024 * 1024;
inline constexpr std::size_t kMaxConfigDocuments = 1000;
inline constexpr std::int64_t kUntimestampedBase = std::int64_t{1} << 62;

// What an AuthorizationPolicy attaches to (targetRefs). group: "" (Service), "networking.istio.io"
// (ServiceEntry), "gateway.networking.k8s.io" (Gateway). The namespace is the policy's.
struct PolicyTarget {
  std::string group{}, kind{}, name{};  // kind "Service" | "Gateway" | "ServiceEntry"
};

struct AttachedPolicy {
  L7Policy policy{};
  std::vector<PolicyTarget> targets{};
};

struct WaypointConfig {
  std::vector<HttpRoute> routes{};           // HTTPRoutes and GRPCRoutes (converted), in document order
  std::vector<AttachedPolicy> policies{};    // document order
};

// One file's text (multi-document YAML, `---` separated). source_name prefixes every error. Two resources
// with the same kind/namespace/name are refused.
Result<WaypointConfig> parse_waypoint_config(std::string_view yaml, std::string_view source_name);

// Files or directories (a directory: its *.yaml / *.yml files, sorted by name, not recursive). All-or-nothing:
// any error fails the whole load. Also refuses two resources with the same kind/namespace/name across files,
// naming both places.
Result<WaypointConfig> load_waypoint_config(const std::vector<std::string>& paths);

}  // namespace ambient::waypoint
