#pragma once
// RouteTable: every match of every rule of the HTTPRoutes attached to one service, validated once and sorted
// by Gateway API precedence, so a request takes the first match that holds (a linear scan; no allocation).
//
// Precedence across all matches of all routes (Gateway API HTTPRouteRule), continuing on ties:
//   1. an Exact path; then a RegularExpression path; then a PathPrefix, longest first
//      (regular expressions are implementation-specific in the spec: here after Exact, before any prefix);
//   2. a method match;  3. more header matches;  4. more query parameter matches;
//   5. the older route;  6. "<namespace>/<name>" alphabetically;  7. rule order, then match order in the route.
// A table of GRPCRoutes only ranks by GRPCRoute's precedence instead of 1-4: more characters in the matching
// service, then in the method, then more header matches (then 5-7 as above).
// Semantics: PathPrefix matches whole path elements ("/foo" matches "/foo", "/foo/", "/foo/bar", not
// "/foobar"; a trailing '/' in the prefix is ignored); Exact and regular expressions (ECMAScript syntax,
// whole-string match) see the path without the query. Header names compare case-insensitively, query parameter
// names exactly; the first occurrence in the request is the one matched.
// Limits (validated, kMax* below): routes per table, rules per route, matches per rule, conditions per match,
// and the length of a regular expression.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "waypoint/routing/http_route.h"

namespace ambient::waypoint {

inline constexpr std::size_t kMaxRoutes = 256;
inline constexpr std::size_t kMaxRulesPerRoute = 64;
inline constexpr std::size_t kMaxMatchesPerRule = 64;
inline constexpr std::size_t kMaxConditionsPerMatch = 16;  // headers, and query parameters, each
inline constexpr std::size_t kMaxRegexLength = 1024;

struct RouteSelection {
  const HttpRoute* route = nullptr;
  const RouteRule* rule = nullptr;
  std::size_t rule_index = 0, match_index = 0;
};

class RouteTable {
 public:
  // Validates every route (errors name "<ns>/<name>: rules[i].matches[j].<field>: why") and orders the matches.
  static Result<RouteTable> build(std::vector<HttpRoute> routes);

  // The rule for `request`, or nullopt when no match holds (the caller then sends the request to the
  // original service, as a waypoint does for a service without a matching route).
  std::optional<RouteSelection> select(const RequestView& request) const;

  const std::vector<HttpRoute>& routes() const { return *routes_; }
  std::size_t match_count() const { return entries_.size(); }

  struct Compiled;  // one match, ready to evaluate (compiled regular expressions); route_table.cpp

 private:
  struct Entry {
    std::shared_ptr<const Compiled> match;
    std::size_t route, rule, match_index;
  };
  std::shared_ptr<std::vector<HttpRoute>> routes_;
  std::vector<Entry> entries_;  // precedence order
};

// Weighted choice among `backends` (weight 0 never chosen). `random` is any uniformly distributed value.
// nullopt when the rule has no backend with a weight (Gateway API answers such requests with 500).
std::optional<std::size_t> pick_backend(const std::vector<BackendRef>& backends, std::uint64_t random);

}  // namespace ambient::waypoint
