#pragma once
// HTTPRoute as the waypoint uses it: the Gateway API fields that select a rule for a request (matches) and
// where the rule sends it (weighted backendRefs). Plain values; RouteTable (route_table.h) validates and
// orders them. Filters, timeouts and retries attach to rules in later layers.
#include <cstdint>
#include <optional>
#include <string>
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
};

struct BackendRef {
  std::string name;       // a Service name, in `ns` (default: the route's namespace)
  std::string ns;
  std::uint16_t port = 0;
  std::uint32_t weight = 1;  // Gateway API default 1; 0 = never chosen
};

// No matches = one match of PathPrefix "/".
struct RouteRule {
  std::vector<RouteMatch> matches;
  std::vector<BackendRef> backends;
};

struct HttpRoute {
  std::string ns, name;
  std::int64_t created = 0;  // creation time (any monotonic order): older routes win ties
  std::vector<RouteRule> rules;
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
