#pragma once
// HTTPRoute as the waypoint uses it: the Gateway API fields that select a rule for a request (matches), where
// the rule sends it (weighted backendRefs), what it changes on the way (filters), and how long and how often
// it tries (timeouts, retry). Plain values; RouteTable (route_table.h) validates and orders the matches; the
// config layer (waypoint/config) fills them from Kubernetes YAML and validates the rest.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ambient::waypoint {

enum class PathMatchType : std::uint8_t { Exact, PathPrefix, RegularExpression };
enum class ValueMatchType : std::uint8_t { Exact, RegularExpression };

struct PathMatch {
  PathMatchType type = PathMatchType::PathPrefix;
  std::string value = "/";
};

// A header (name case-insensitive) or query parameter (name case-sensitive) and the value it must have.
struct ValueMatch {
  ValueMatchType type = ValueMatchType::Exact;
  std::string name;
  std::string value;
};

// All of its conditions must hold. No path = PathPrefix "/".
struct RouteMatch {
  std::optional<PathMatch> path;
  std::vector<ValueMatch> headers;
  std::vector<ValueMatch> query_params;
  std::optional<std::string> method;  // "GET", "POST", ...
  // From a GRPCRoute method match (converted to `path`): the characters of its service and method, which
  // GRPCRoute's precedence ranks by (route_table.h).
  std::uint32_t grpc_service_chars = 0, grpc_method_chars = 0;
};

struct BackendRef {
  std::string name;       // a Service name, in `ns` (default: the route's namespace)
  std::string ns;
  std::uint16_t port = 0;
  std::uint32_t weight = 1;  // Gateway API default 1; 0 = never chosen
};

// RequestHeaderModifier / ResponseHeaderModifier. Names lower-case. Applied as Gateway API orders them: set
// (replace or create), then add (append), then remove.
struct HeaderModifier {
  std::vector<std::pair<std::string, std::string>> set{}, add{};
  std::vector<std::string> remove{};
};

// HTTPPathModifier: ReplaceFullPath replaces the path; ReplacePrefixMatch replaces the part the rule's
// PathPrefix match matched (only valid on rules whose matches are PathPrefix).
struct PathModifier {
  enum class Type : std::uint8_t { ReplaceFullPath, ReplacePrefixMatch };
  Type type = Type::ReplaceFullPath;
  std::string value;
};

struct RequestRedirect {
  std::optional<std::string> scheme{}, hostname{};  // scheme: "http" | "https"
  std::optional<PathModifier> path{};
  std::optional<std::uint16_t> port{};
  int status_code = 302;  // 301 | 302 (Gateway API standard), 303 | 307 | 308 (extended)
};

struct UrlRewrite {
  std::optional<std::string> hostname{};
  std::optional<PathModifier> path{};
};

struct RequestMirror {
  BackendRef backend{};
  std::uint32_t percent = 100;  // 0..100 of requests mirrored (fraction folded into percent)
};

// A rule's filters, at most one of each kind but mirrors (Gateway API). redirect and rewrite exclude each other.
struct RouteFilters {
  std::optional<HeaderModifier> request_headers{}, response_headers{};
  std::optional<RequestRedirect> redirect{};
  std::optional<UrlRewrite> rewrite{};
  std::vector<RequestMirror> mirrors{};
};

// timeouts.request bounds the whole request including retries; timeouts.backendRequest each attempt.
// Absent = no timeout (Istio's waypoint default). Both answer 504 when they fire.
struct RouteTimeouts {
  std::optional<std::chrono::milliseconds> request{}, backend_request{};
};

// Retry (Gateway API HTTPRouteRetry, as Istio converts it). Retried: connect failures, refused streams,
// resets before response headers, and the listed status codes. Istio's default when the rule names none:
// 2 attempts beyond the first (istio's retryOn connect-failure,refused-stream,unavailable,cancelled,503).
struct RetryPolicy {
  std::uint32_t attempts = 2;  // retries after the first try
  std::vector<int> codes{503};
  std::chrono::milliseconds backoff{25};  // base interval; jittered exponential up to 10x (Envoy's)
};

// No matches = one match of PathPrefix "/".
struct RouteRule {
  std::vector<RouteMatch> matches{};
  std::vector<BackendRef> backends{};
  RouteFilters filters{};
  RouteTimeouts timeouts{};
  RetryPolicy retry{};
};

// parentRefs: what the route attaches to. For a waypoint (GAMMA) the parent is a Service (group "" or "core")
// in `ns` (default the route's); a port restricts the route to that service port.
struct ParentRef {
  std::string group{}, kind = "Service", ns{}, name{};
  std::optional<std::uint16_t> port{};
};

struct HttpRoute {
  std::string ns{}, name{};
  std::int64_t created = 0;  // creation time (any monotonic order): older routes win ties
  bool grpc = false;         // from a GRPCRoute (matches already converted to path/method/header matches)
  std::vector<ParentRef> parents{};
  std::vector<RouteRule> rules{};
};

// The parts of a request that matches look at. Header names must be lower-case (HTTP/2 sends them so; the
// HTTP/1 parser lower-cases them).
struct RequestView {
  std::string_view method;
  std::string_view path;   // without the query string
  std::string_view query;  // after '?', without it; may be empty
  std::vector<std::pair<std::string_view, std::string_view>> headers;
};

}  // namespace ambient::waypoint
