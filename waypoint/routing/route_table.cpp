#include "waypoint/routing/route_table.h"

#include <algorithm>
#include <cctype>
#include <tuple>

#include <boost/regex.hpp>
#include <fmt/format.h>

#include "common/base/ascii.h"

namespace ambient::waypoint {

namespace {

bool is_token(std::string_view s) {  // RFC 9110 token: header names and methods
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

// The first value of query parameter `name` in `query` ("a=1&b=2"), as sent (no percent-decoding).
std::optional<std::string_view> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

// Whole-string match. Boost.Regex throws when a match exceeds its complexity bound (catastrophic backtracking):
// on the data path that is a non-match, never an exception (fail closed: the rule does not apply).
bool regex_holds(std::string_view v, const boost::regex& r) noexcept {
  try {
    return boost::regex_match(v.begin(), v.end(), r);
  } catch (...) {
    return false;
  }
}

}  // namespace

struct RouteTable::Compiled {
  struct Condition {
    ValueMatchType type;
    std::string name;   // headers: lower-case
    std::string value;  // Exact
    std::optional<boost::regex> regex;
    bool holds(std::string_view v) const {
      return type == ValueMatchType::Exact ? v == value : regex_holds(v, *regex);
    }
  };
  PathMatchType path_type = PathMatchType::PathPrefix;
  std::string path;  // Exact value, or the prefix without its trailing '/' ("" for "/")
  std::optional<boost::regex> path_regex;
  std::optional<std::string> method;
  std::vector<Condition> headers, query_params;

  bool path_holds(std::string_view p) const {
    switch (path_type) {
      case PathMatchType::Exact: return p == path;
      case PathMatchType::RegularExpression: return regex_holds(p, *path_regex);
      case PathMatchType::PathPrefix:
        return path.empty() || (p.starts_with(path) && (p.size() == path.size() || p[path.size()] == '/'));
    }
    return false;
  }

  bool holds(const RequestView& r) const {
    if (method && r.method != *method) return false;
    if (!path_holds(r.path)) return false;
    for (const auto& h : headers) {
      const auto it = std::find_if(r.headers.begin(), r.headers.end(), [&](const auto& kv) { return ascii_iequals(kv.first, h.name); });
      if (it == r.headers.end() || !h.holds(it->second)) return false;
    }
    for (const auto& q : query_params) {
      auto v = query_param(r.query, q.name);
      if (!v || !q.holds(*v)) return false;
    }
    return true;
  }

  std::uint32_t grpc_service_chars = 0, grpc_method_chars = 0;

  // Smaller sorts first: GRPCRoute's precedence (service, method, headers) in a table of GRPCRoutes only.
  auto grpc_rank() const {
    return std::make_tuple(-static_cast<long>(grpc_service_chars), -static_cast<long>(grpc_method_chars),
                           -static_cast<long>(headers.size()));
  }
  // Smaller sorts first (criteria 1-4 of the precedence).
  auto rank() const {
    const int kind = path_type == PathMatchType::Exact ? 0 : path_type == PathMatchType::RegularExpression ? 1 : 2;
    const long prefix = path_type == PathMatchType::PathPrefix ? -static_cast<long>(path.size()) : 0;
    return std::make_tuple(kind, prefix, method ? 0 : 1, -static_cast<long>(headers.size()), -static_cast<long>(query_params.size()));
  }
};

namespace {

Result<boost::regex> compile(const std::string& where, const std::string& pattern) {
  if (pattern.size() > kMaxRegexLength)
    return errorf(ErrorKind::InvalidArgument, "{}: regular expression of {} characters (at most {})", where, pattern.size(), kMaxRegexLength);
  boost::regex r;
  try {  // Boost.Regex reports a bad pattern only by throwing; config load, never the data path
    r.assign(pattern, boost::regex::ECMAScript);
  } catch (const boost::regex_error& e) {
    return errorf(ErrorKind::InvalidArgument, "{}: '{}' is not a regular expression: {}", where, pattern, e.what());
  }
  return r;
}

Result<std::vector<RouteTable::Compiled::Condition>> conditions(const std::string& where, const std::vector<ValueMatch>& in,
                                                                 bool header) {
  if (in.size() > kMaxConditionsPerMatch)
    return errorf(ErrorKind::InvalidArgument, "{}: {} conditions (at most {})", where, in.size(), kMaxConditionsPerMatch);
  std::vector<RouteTable::Compiled::Condition> out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const std::string at = fmt::format("{}[{}]", where, i);
    const auto& m = in[i];
    if (header ? !is_token(m.name) : m.name.empty())
      return errorf(ErrorKind::InvalidArgument, "{}.name: '{}' is not a {}", at, m.name, header ? "header name" : "query parameter name");
    const std::string name = header ? ascii_lower(m.name) : m.name;
    // Gateway API: of entries with equivalent names only the first counts.
    if (std::any_of(out.begin(), out.end(), [&](const auto& c) { return c.name == name; })) continue;
    RouteTable::Compiled::Condition c{m.type, name, m.value, std::nullopt};
    if (m.type == ValueMatchType::RegularExpression) {
      auto r = compile(at + ".value", m.value);
      if (!r) return std::move(r).error();
      c.regex = std::move(*r);
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

Result<RouteTable> RouteTable::build(std::vector<HttpRoute> routes) {
  if (routes.size() > kMaxRoutes) return errorf(ErrorKind::InvalidArgument, "{} routes for one service (at most {})", routes.size(), kMaxRoutes);
  RouteTable t;
  t.routes_ = std::make_shared<std::vector<HttpRoute>>(std::move(routes));
  const auto& all = *t.routes_;
  for (std::size_t ri = 0; ri < all.size(); ++ri) {
    const auto& route = all[ri];
    const std::string id = route.ns + "/" + route.name;
    if (route.rules.size() > kMaxRulesPerRoute)
      return errorf(ErrorKind::InvalidArgument, "{}: {} rules (at most {})", id, route.rules.size(), kMaxRulesPerRoute);
    for (std::size_t i = 0; i < route.rules.size(); ++i) {
      const auto& rule = route.rules[i];
      if (rule.matches.size() > kMaxMatchesPerRule)
        return errorf(ErrorKind::InvalidArgument, "{}: rules[{}]: {} matches (at most {})", id, i, rule.matches.size(), kMaxMatchesPerRule);
      for (std::size_t b = 0; b < rule.backends.size(); ++b)
        if (rule.backends[b].name.empty() || rule.backends[b].port == 0)
          return errorf(ErrorKind::InvalidArgument, "{}: rules[{}].backendRefs[{}]: needs a name and a port", id, i, b);
      const std::vector<RouteMatch> implicit(1);  // no matches: PathPrefix "/"
      const auto& matches = rule.matches.empty() ? implicit : rule.matches;
      for (std::size_t j = 0; j < matches.size(); ++j) {
        const auto& m = matches[j];
        const std::string at = fmt::format("{}: rules[{}].matches[{}]", id, i, j);
        auto c = std::make_shared<Compiled>();
        const PathMatch path = m.path.value_or(PathMatch{});
        c->path_type = path.type;
        if (path.type != PathMatchType::RegularExpression && (path.value.empty() || path.value.front() != '/'))
          return errorf(ErrorKind::InvalidArgument, "{}.path.value: '{}' must start with '/'", at, path.value);
        if (path.type == PathMatchType::RegularExpression) {
          auto r = compile(at + ".path.value", path.value);
          if (!r) return std::move(r).error();
          c->path_regex = std::move(*r);
        } else if (path.type == PathMatchType::PathPrefix) {
          c->path = path.value;
          while (!c->path.empty() && c->path.back() == '/') c->path.pop_back();
        } else {
          c->path = path.value;
        }
        if (m.method) {
          if (!is_token(*m.method)) return errorf(ErrorKind::InvalidArgument, "{}.method: '{}' is not an HTTP method", at, *m.method);
          c->method = *m.method;
        }
        auto headers = conditions(at + ".headers", m.headers, true);
        if (!headers) return std::move(headers).error();
        c->headers = std::move(*headers);
        auto query = conditions(at + ".queryParams", m.query_params, false);
        if (!query) return std::move(query).error();
        c->query_params = std::move(*query);
        c->grpc_service_chars = m.grpc_service_chars;
        c->grpc_method_chars = m.grpc_method_chars;
        t.entries_.push_back(Entry{std::move(c), ri, i, j});
      }
    }
  }
  const bool grpc_only = !all.empty() && std::all_of(all.begin(), all.end(), [](const HttpRoute& r) { return r.grpc; });
  std::stable_sort(t.entries_.begin(), t.entries_.end(), [&](const Entry& a, const Entry& b) {
    const auto& ra = all[a.route];
    const auto& rb = all[b.route];
    if (grpc_only && a.match->grpc_rank() != b.match->grpc_rank()) return a.match->grpc_rank() < b.match->grpc_rank();
    if (!grpc_only && a.match->rank() != b.match->rank()) return a.match->rank() < b.match->rank();
    return std::make_tuple(ra.created, std::tie(ra.ns, ra.name), a.rule, a.match_index) <
           std::make_tuple(rb.created, std::tie(rb.ns, rb.name), b.rule, b.match_index);
  });
  return t;
}

std::optional<RouteSelection> RouteTable::select(const RequestView& request) const {
  for (const auto& e : entries_) {
    if (!e.match->holds(request)) continue;
    const auto& route = (*routes_)[e.route];
    return RouteSelection{&route, &route.rules[e.rule], e.rule, e.match_index};
  }
  return std::nullopt;
}

std::optional<std::size_t> pick_backend(const std::vector<BackendRef>& backends, std::uint64_t random) {
  std::uint64_t total = 0;
  for (const auto& b : backends) total += b.weight;
  if (total == 0) return std::nullopt;
  std::uint64_t point = random % total;
  for (std::size_t i = 0; i < backends.size(); ++i) {
    if (point < backends[i].weight) return i;
    point -= backends[i].weight;
  }
  return std::nullopt;  // unreachable: point < total
}

}  // namespace ambient::waypoint
