#pragma once
// Small helpers shared by the HTTP/1 and HTTP/2 exchanges: header edits (names lower-case, as both codecs give
// them), the Gateway API header modifier, Envoy's retry backoff, and a byte view of a string.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/h2/headers.h"
#include "waypoint/routing/http_route.h"

namespace ambient::waypoint {

inline std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Replaces the first `name` header's value, or appends one.
inline void set_header(h2::Headers& hs, std::string_view name, std::string value) {
  for (auto& h : hs)
    if (h.name == name) {
      h.value = std::move(value);
      return;
    }
  hs.push_back({std::string(name), std::move(value)});
}

inline void remove_header(h2::Headers& hs, std::string_view name) {
  std::erase_if(hs, [&](const h2::Header& h) { return h.name == name; });
}

// RequestHeaderModifier / ResponseHeaderModifier in Gateway API order: set (replace or create), add, remove.
inline void apply_modifier(const HeaderModifier& m, h2::Headers& hs) {
  for (const auto& [n, v] : m.set) {
    remove_header(hs, n);
    hs.push_back({n, v});
  }
  for (const auto& [n, v] : m.add) hs.push_back({n, v});
  for (const auto& n : m.remove) remove_header(hs, n);
}

// Envoy's retry backoff before retry `attempt` (1-based): uniform in [0, base * 2^(attempt-1)], capped at 10x base.
inline std::chrono::milliseconds retry_backoff(const RetryPolicy& retry, std::uint32_t attempt, std::uint64_t random) {
  const std::int64_t base = retry.backoff.count();
  const std::int64_t cap = std::min<std::int64_t>(base << std::min<std::uint32_t>(attempt - 1, 10), base * 10);
  if (cap <= 0) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(random % static_cast<std::uint64_t>(cap + 1)));
}

// One attempt's deadline: the rule's backendRequest from `now`, within the request's deadline (`request`, from
// timeouts.request at the request's start); nullopt when neither bounds it. It also bounds the response body.
inline std::optional<std::chrono::steady_clock::time_point> attempt_deadline(const RouteTimeouts& timeouts,
                                                                             std::optional<std::chrono::steady_clock::time_point> request,
                                                                             std::chrono::steady_clock::time_point now) {
  if (!timeouts.backend_request) return request;
  const auto per = now + *timeouts.backend_request;
  return request && *request < per ? request : std::optional(per);
}

// The request's path after a PathModifier: ReplaceFullPath, or ReplacePrefixMatch of the prefix `match` matched
// (element-wise, as PathPrefix matches). The query is not part of `path`.
inline std::string rewrite_path(const PathModifier& m, const RouteMatch* match, std::string_view path) {
  if (m.type == PathModifier::Type::ReplaceFullPath) return m.value;
  std::string prefix = match && match->path ? match->path->value : std::string("/");
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  std::string_view rest = path.substr(std::min(prefix == "/" ? 0 : prefix.size(), path.size()));
  std::string out = m.value;
  if (!out.empty() && out.back() == '/' && rest.starts_with('/')) rest.remove_prefix(1);
  if (!rest.empty() && !rest.starts_with('/') && !out.ends_with('/')) out += '/';
  out += rest;
  if (out.empty()) out = "/";
  return out;
}

inline std::string with_query(std::string path, std::string_view query) {
  if (!query.empty()) {
    path += '?';
    path += query;
  }
  return path;
}

// "host:port" -> "host", "[v6]:port" -> "[v6]"; a host without a port is returned as is.
inline std::string_view host_without_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  const auto colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

// The Location of a RequestRedirect for a request to `host` (Host / :authority) `path` ? `query`: the filter's
// scheme, hostname, port and path where set; the request's otherwise (its port only when scheme and hostname
// are both kept); a port that is the scheme's default is left out.
inline std::string redirect_location(const RequestRedirect& r, const RouteMatch* match, std::string_view path,
                                     std::string_view query, std::string_view host) {
  const std::string scheme = r.scheme.value_or("http");
  std::string location = scheme + "://" + (r.hostname ? *r.hostname : std::string(host_without_port(host)));
  if (r.port) {
    if (!((scheme == "http" && *r.port == 80) || (scheme == "https" && *r.port == 443))) location += ":" + std::to_string(*r.port);
  } else if (!r.scheme && !r.hostname) {
    const auto colon = host.rfind(':');
    if (colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos) location += host.substr(colon);
  }
  return location + with_query(r.path ? rewrite_path(*r.path, match, path) : std::string(path), query);
}

}  // namespace ambient::waypoint
