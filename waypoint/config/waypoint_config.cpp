#include "waypoint/config/waypoint_config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <optional>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "common/base/ascii.h"
#include "common/state/yaml_walker.h"
#include "waypoint/routing/route_table.h"

namespace ambient::waypoint {
namespace {

// Parsing walks the yaml-cpp tree by hand (no Node::as<>, which throws), in the style of
// common/state/local_config.cpp: a value travels with its field path and line; null values count as absent.

using yaml::At;
using yaml::contains;
using yaml::join;
using yaml::kind_of;
using yaml::line_of;
using yaml::Names;

// RFC 7230 token (header names, methods).
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

// A header value we inject must not split or end the header (CR, LF, NUL).
bool safe_value(std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos; }

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Gateway API Duration: ^([0-9]{1,5}(h|m|s|ms)){1,4}$, in milliseconds.
std::optional<std::int64_t> parse_duration(std::string_view s) {
  std::int64_t total = 0;
  int parts = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = i;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    if (j == i || j - i > 5 || j == s.size()) return std::nullopt;
    const std::int64_t n = std::stoll(std::string(s.substr(i, j - i)));
    std::int64_t unit = 0;
    if (s.substr(j, 2) == "ms") {
      unit = 1;
      j += 2;
    } else if (s[j] == 'h') {
      unit = 3600 * 1000;
      ++j;
    } else if (s[j] == 'm') {
      unit = 60 * 1000;
      ++j;
    } else if (s[j] == 's') {
      unit = 1000;
      ++j;
    } else {
      return std::nullopt;
    }
    total += n * unit;
    if (++parts > 4) return std::nullopt;
    i = j;
  }
  if (parts == 0) return std::nullopt;
  return total;
}

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// RFC 3339 "2026-01-02T03:04:05Z" (optional fraction, 'Z' or "+hh:mm"/"-hh:mm"): seconds since the epoch.
std::optional<std::int64_t> parse_timestamp(std::string_view s) {
  auto num = [&](std::size_t pos, std::size_t len) -> std::optional<int> {
    if (pos + len > s.size()) return std::nullopt;
    const auto part = s.substr(pos, len);
    if (!all_digits(part)) return std::nullopt;
    return std::stoi(std::string(part));
  };
  auto at = [&](std::size_t pos, std::string_view chars) { return pos < s.size() && chars.find(s[pos]) != std::string_view::npos; };
  const auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), se = num(17, 2);
  if (!y || !mo || !d || !h || !mi || !se || !at(4, "-") || !at(7, "-") || !at(10, "Tt ") || !at(13, ":") || !at(16, ":"))
    return std::nullopt;
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
  if (*mo < 1 || *mo > 12 || *d < 1 || *d > kDays[*mo - 1] || (*mo == 2 && *d == 29 && !leap) || *h > 23 || *mi > 59 ||
      *se > 60)
    return std::nullopt;
  std::size_t i = 19;
  if (at(i, ".")) {
    ++i;
    const std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return std::nullopt;
  }
  std::int64_t offset = 0;
  if (at(i, "Zz")) {
    ++i;
  } else if (at(i, "+-")) {
    const auto oh = num(i + 1, 2), om = num(i + 4, 2);
    if (!oh || !om || !at(i + 3, ":") || *oh > 23 || *om > 59) return std::nullopt;
    offset = (s[i] == '-' ? -1 : 1) * (*oh * 3600 + *om * 60);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return days_from_civil(*y, static_cast<unsigned>(*mo), static_cast<unsigned>(*d)) * 86400 + *h * 3600 + *mi * 60 + *se -
         offset;
}

// Kubernetes object name / namespace (DNS-1123 subdomain, lower-case).
bool is_object_name(std::string_view s) {
  return !s.empty() && s.size() <= 253 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
         });
}

std::string regex_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view(".^$|()[]{}*+?\\/").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// A resource seen in this load, for duplicate detection.
struct Seen {
  std::string key;    // "<Kind> <ns>/<name>"
  std::string where;  // "<source>:<line>"
};

const Names kTopFields = {"apiVersion", "kind", "metadata", "spec", "status"};
const Names kMetadataFields = {"name", "namespace", "creationTimestamp", "labels", "annotations", "uid",
                               "resourceVersion", "generation", "generateName", "managedFields", "finalizers",
                               "ownerReferences", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"};
const Names kSupported = {"gateway.networking.k8s.io/v1 HTTPRoute", "gateway.networking.k8s.io/v1beta1 HTTPRoute",
                          "gateway.networking.k8s.io/v1 GRPCRoute", "security.istio.io/v1 AuthorizationPolicy",
                          "security.istio.io/v1beta1 AuthorizationPolicy"};
const Names kHttpSpecFields = {"parentRefs", "hostnames", "rules"};
const Names kParentRefFields = {"group", "kind", "namespace", "name", "port", "sectionName"};
const Names kHttpRuleFields = {"name", "matches", "filters", "backendRefs", "timeouts", "retry"};
const Names kGrpcRuleFields = {"name", "matches", "filters", "backendRefs"};
const Names kHttpMatchFields = {"path", "headers", "queryParams", "method"};
const Names kGrpcMatchFields = {"method", "headers"};
const Names kPathFields = {"type", "value"};
const Names kValueMatchFields = {"type", "name", "value"};
const Names kGrpcMethodFields = {"type", "service", "method"};
const Names kBackendRefFields = {"group", "kind", "name", "namespace", "port", "weight", "filters"};
const Names kMirrorBackendFields = {"group", "kind", "name", "namespace", "port"};
const Names kFilterFields = {"type", "requestHeaderModifier", "responseHeaderModifier", "requestRedirect", "urlRewrite",
                             "requestMirror", "extensionRef", "cors", "externalAuth"};
const Names kHttpFilterTypes = {"RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite",
                                "RequestMirror"};
const Names kGrpcFilterTypes = {"RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror"};
const Names kHeaderModifierFields = {"set", "add", "remove"};
const Names kHeaderFields = {"name", "value"};
const Names kRedirectFields = {"scheme", "hostname", "path", "port", "statusCode"};
const Names kRewriteFields = {"hostname", "path"};
const Names kPathModifierFields = {"type", "replaceFullPath", "replacePrefixMatch"};
const Names kMirrorFields = {"backendRef", "percent", "fraction"};
const Names kFractionFields = {"numerator", "denominator"};
const Names kTimeoutFields = {"request", "backendRequest"};
const Names kRetryFields = {"codes", "attempts", "backoff"};
const Names kHttpMethods = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};
const Names kPolicySpecFields = {"selector", "targetRef", "targetRefs", "action", "provider", "rules"};
const Names kTargetRefFields = {"group", "kind", "name", "namespace"};
const Names kPolicyRuleFields = {"from", "to", "when"};
const Names kFromFields = {"source"};
const Names kToFields = {"operation"};
const Names kSourceFields = {"principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces",
                             "notNamespaces", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"};
const Names kOperationFields = {"hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"};
const Names kConditionFields = {"key", "values", "notValues"};

constexpr std::size_t kMaxModifierEntries = 16;  // Gateway API maxItems for set / add / remove
constexpr std::uint32_t kMaxRetryAttempts = 1000;

class Parser : private yaml::Walker {
 public:
  Parser(std::string_view source, std::size_t* doc_counter, std::vector<Seen>* seen, WaypointConfig* out)
      : yaml::Walker(source), doc_counter_(doc_counter), seen_(seen), out_(out) {
    lines_ = &field_lines_;
  }

  Result<void> document(const YAML::Node& doc);

 private:
  // An error from a lower layer whose context already starts with the field path (`where`).
  Error wrap(int line, Error e) const {
    e.context = fmt::format("{}:{}: {}{}", source_, line, prefix_, e.context);
    return e;
  }

  Result<std::vector<std::string>> strings(const At& at);
  Result<std::string> one_of(const At& at, Names allowed) const;
  Result<std::optional<std::chrono::milliseconds>> duration(const At& at) const;

  Result<void> http_route(const At& spec, bool grpc, HttpRoute& route);
  Result<void> parent_ref(const At& at, ParentRef& p);
  Result<void> http_rule(const At& at, bool grpc, RouteRule& rule);
  Result<void> http_match(const At& at, RouteMatch& m);
  Result<void> grpc_match(const At& at, RouteMatch& m);
  Result<void> value_matches(const At& at, bool header, std::vector<ValueMatch>& out);
  Result<void> backend_ref(const At& at, bool mirror, BackendRef& b);
  Result<void> filter(const At& at, bool grpc, const std::vector<RouteMatch>& matches, RouteFilters& f);
  Result<void> header_modifier(const At& at, HeaderModifier& h);
  Result<void> path_modifier(const At& at, const std::vector<RouteMatch>& matches, PathModifier& p);
  Result<void> validate_route(const HttpRoute& route, int doc_line) const;

  Result<void> policy(const At& spec, AttachedPolicy& p);
  Result<void> target_ref(const At& at, PolicyTarget& t);
  Result<void> patterns(const At& at, std::vector<StringPattern>& out);
  Result<void> ip_blocks(const At& at, std::vector<IpBlock>& out);
  Result<void> ports(const At& at, std::vector<std::uint16_t>& out);

  std::size_t* doc_counter_;
  std::vector<Seen>* seen_;
  WaypointConfig* out_;
  std::string ns_;                                    // the resource's namespace
  std::unordered_map<std::string, int> field_lines_;  // field path -> line, to place RouteTable::build errors
};

Result<std::vector<std::string>> Parser::strings(const At& at) {
  std::vector<std::string> out;
  AMBIENT_TRY(list(at, [&](const At& e, std::size_t) -> Result<void> {
    auto s = str(e);
    if (!s) return std::move(s).error();
    out.push_back(std::move(*s));
    return ok();
  }));
  return out;
}

Result<std::string> Parser::one_of(const At& at, Names allowed) const {
  auto s = str(at);
  if (!s) return s;
  if (!contains(allowed, *s)) return fail(at, fmt::format("\"{}\" is not one of {}", *s, join(allowed)));
  return s;
}

// A Gateway API duration; "0s" (any zero) = no timeout.
Result<std::optional<std::chrono::milliseconds>> Parser::duration(const At& at) const {
  auto s = str(at);
  if (!s) return std::move(s).error();
  const auto ms = parse_duration(*s);
  if (!ms)
    return fail(at, fmt::format("\"{}\" is not a duration (1 to 4 of <1-5 digits><h|m|s|ms>, e.g. \"10s\", \"1m30s\", "
                                "\"500ms\")", *s));
  if (*ms == 0) return std::optional<std::chrono::milliseconds>{};
  return std::optional<std::chrono::milliseconds>{std::chrono::milliseconds(*ms)};
}

Result<void> Parser::document(const YAML::Node& doc) {
  const std::size_t index = (*doc_counter_)++;
  const int doc_line = line_of(doc, 1);
  std::optional<At> api, kind, metadata, spec;
  AMBIENT_TRY(fields(At{doc, "", doc_line}, kTopFields, {"apiVersion", "kind"}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "apiVersion") api = v;
    else if (key == "kind") kind = v;
    else if (key == "metadata") metadata = v;
    else if (key == "spec") spec = v;
    return ok();  // status: written by controllers, ignored
  }));
  auto api_s = str(*api);
  if (!api_s) return std::move(api_s).error();
  auto kind_s = str(*kind);
  if (!kind_s) return std::move(kind_s).error();
  const std::string full = *api_s + " " + *kind_s;
  if (!contains(kSupported, full))
    return fail(*kind, fmt::format("{} {} is not supported (supported: {})", *api_s, *kind_s, join(kSupported)),
                ErrorKind::Unsupported);

  if (!metadata) return fail(doc_line, "", "missing required field \"metadata\"");
  std::optional<At> name_at;
  std::string name, ns = "default";
  std::optional<std::int64_t> created;
  AMBIENT_TRY(fields(*metadata, kMetadataFields, {"name"}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "name" || key == "namespace") {
      auto s = str(v);
      if (!s) return std::move(s).error();
      if (!is_object_name(*s)) return fail(v, fmt::format("\"{}\" is not a Kubernetes object name (lower-case DNS-1123)", *s));
      (key == "name" ? name : ns) = std::move(*s);
      if (key == "name") name_at = v;
    } else if (key == "creationTimestamp") {
      auto s = str(v);
      if (!s) return std::move(s).error();
      created = parse_timestamp(*s);
      if (!created) return fail(v, fmt::format("\"{}\" is not an RFC 3339 time (e.g. 2026-01-02T03:04:05Z)", *s));
    }
    return ok();  // labels, annotations, uid, ...: accepted, ignored
  }));

  prefix_ = fmt::format("{} {}/{}: ", *kind_s, ns, name);
  ns_ = ns;
  const std::string key = fmt::format("{} {}/{}", *kind_s, ns, name);
  const std::string where = fmt::format("{}:{}", source_, name_at->line);
  for (const auto& s : *seen_)
    if (s.key == key) return fail(name_at->line, "metadata.name", fmt::format("duplicate resource, first defined at {}", s.where));
  seen_->push_back(Seen{key, where});

  const At spec_at = spec ? *spec : At{YAML::Node(YAML::NodeType::Null), "spec", doc_line};
  if (*kind_s == "AuthorizationPolicy") {
    AttachedPolicy p;
    p.policy.ns = ns;
    p.policy.name = name;
    AMBIENT_TRY(policy(spec_at, p));
    out_->policies.push_back(std::move(p));
    return ok();
  }
  HttpRoute route;
  route.ns = ns;
  route.name = name;
  route.grpc = *kind_s == "GRPCRoute";
  route.created = created ? *created : kUntimestampedBase + static_cast<std::int64_t>(index);
  AMBIENT_TRY(http_route(spec_at, route.grpc, route));
  AMBIENT_TRY(validate_route(route, doc_line));
  out_->routes.push_back(std::move(route));
  return ok();
}

// ---- HTTPRoute / GRPCRoute ----

Result<void> Parser::http_route(const At& spec, bool grpc, HttpRoute& route) {
  return fields(spec, kHttpSpecFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "parentRefs") {
      return list(v, [&](const At& e, std::size_t) -> Result<void> {
        ParentRef p;
        AMBIENT_TRY(parent_ref(e, p));
        route.parents.push_back(std::move(p));
        return ok();
      });
    }
    if (key == "hostnames") {  // GAMMA ignores hostnames; checked for shape only
      auto s = strings(v);
      if (!s) return std::move(s).error();
      return ok();
    }
    return list(v, [&](const At& e, std::size_t) -> Result<void> {
      RouteRule r;
      AMBIENT_TRY(http_rule(e, grpc, r));
      route.rules.push_back(std::move(r));
      return ok();
    });
  });
}

Result<void> Parser::parent_ref(const At& at, ParentRef& p) {
  std::string group = "gateway.networking.k8s.io", kind = "Gateway";
  std::optional<At> kind_at;
  AMBIENT_TRY(fields(at, kParentRefFields, {"name"}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "port") {
      auto n = integer(v, 1, 65535, "a port");
      if (!n) return std::move(n).error();
      p.port = static_cast<std::uint16_t>(*n);
      return ok();
    }
    auto s = str(v);
    if (!s) return std::move(s).error();
    if (key == "group") group = *s;
    else if (key == "kind") kind = *s, kind_at = v;
    else if (key == "namespace") p.ns = *s;
    else if (key == "name") p.name = *s;
    return ok();  // sectionName: accepted, ignored
  }));
  if (group == "core") group = "";
  const bool service = kind == "Service" && group.empty();
  const bool gateway = kind == "Gateway" && group == "gateway.networking.k8s.io";
  if (!service && !gateway)
    return fail(kind_at ? *kind_at : at,
                fmt::format("parent {} (group \"{}\") is not supported (supported: Service in group \"\" or \"core\", "
                            "Gateway in gateway.networking.k8s.io)", kind, group),
                ErrorKind::Unsupported);
  p.group = group;
  p.kind = kind;
  if (p.ns.empty()) p.ns = ns_;
  return ok();
}

Result<void> Parser::http_rule(const At& at, bool grpc, RouteRule& rule) {
  std::optional<At> matches, filters, backends, timeouts, retry;
  AMBIENT_TRY(fields(at, grpc ? kGrpcRuleFields : kHttpRuleFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "matches") matches = v;
    else if (key == "filters") filters = v;
    else if (key == "backendRefs") backends = v;
    else if (key == "timeouts") timeouts = v;
    else if (key == "retry") retry = v;
    return ok();  // name: ignored
  }));
  // Matches first: filters check them (ReplacePrefixMatch).
  if (matches)
    AMBIENT_TRY(list(*matches, [&](const At& e, std::size_t) -> Result<void> {
      RouteMatch m;
      AMBIENT_TRY(grpc ? grpc_match(e, m) : http_match(e, m));
      rule.matches.push_back(std::move(m));
      return ok();
    }));
  if (filters)
    AMBIENT_TRY(list(*filters, [&](const At& e, std::size_t) { return filter(e, grpc, rule.matches, rule.filters); }));
  // A rule with RequestRedirect needs no backendRefs (any given are not used); one with neither answers 500.
  if (backends)
    AMBIENT_TRY(list(*backends, [&](const At& e, std::size_t) -> Result<void> {
      BackendRef b;
      AMBIENT_TRY(backend_ref(e, false, b));
      rule.backends.push_back(std::move(b));
      return ok();
    }));
  if (timeouts) {
    std::optional<At> request_at, backend_at;
    AMBIENT_TRY(fields(*timeouts, kTimeoutFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
      auto d = duration(v);
      if (!d) return std::move(d).error();
      if (key == "request") rule.timeouts.request = *d, request_at = v;
      else rule.timeouts.backend_request = *d, backend_at = v;
      return ok();
    }));
    if (rule.timeouts.request && rule.timeouts.backend_request && *rule.timeouts.backend_request > *rule.timeouts.request)
      return fail(*backend_at, fmt::format("{}ms is longer than timeouts.request ({}ms)", rule.timeouts.backend_request->count(),
                                           rule.timeouts.request->count()));
  }
  if (retry) {
    AMBIENT_TRY(fields(*retry, kRetryFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
      if (key == "codes") {
        rule.retry.codes.clear();
        return list(v, [&](const At& e, std::size_t) -> Result<void> {
          auto c = integer(e, 400, 599, "an HTTP status code");
          if (!c) return std::move(c).error();
          rule.retry.codes.push_back(static_cast<int>(*c));
          return ok();
        });
      }
      if (key == "attempts") {
        auto n = integer(v, 0, kMaxRetryAttempts, "a number of attempts");
        if (!n) return std::move(n).error();
        rule.retry.attempts = static_cast<std::uint32_t>(*n);
        return ok();
      }
      auto d = duration(v);
      if (!d) return std::move(d).error();
      rule.retry.backoff = d->value_or(std::chrono::milliseconds(0));
      return ok();
    }));
  }
  return ok();
}

Result<void> Parser::http_match(const At& at, RouteMatch& m) {
  return fields(at, kHttpMatchFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "path") {
      PathMatch p;
      AMBIENT_TRY(fields(v, kPathFields, {}, [&](std::string_view k, const At& pv) -> Result<void> {
        if (k == "type") {
          auto t = one_of(pv, {"Exact", "PathPrefix", "RegularExpression"});
          if (!t) return std::move(t).error();
          p.type = *t == "Exact" ? PathMatchType::Exact : *t == "PathPrefix" ? PathMatchType::PathPrefix : PathMatchType::RegularExpression;
          return ok();
        }
        auto s = str(pv);
        if (!s) return std::move(s).error();
        p.value = std::move(*s);
        return ok();
      }));
      m.path = std::move(p);
      return ok();
    }
    if (key == "headers") return value_matches(v, true, m.headers);
    if (key == "queryParams") return value_matches(v, false, m.query_params);
    auto s = one_of(v, kHttpMethods);
    if (!s) return std::move(s).error();
    m.method = std::move(*s);
    return ok();
  });
}

Result<void> Parser::value_matches(const At& at, bool header, std::vector<ValueMatch>& out) {
  return list(at, [&](const At& e, std::size_t) -> Result<void> {
    ValueMatch vm;
    AMBIENT_TRY(fields(e, kValueMatchFields, {"name", "value"}, [&](std::string_view k, const At& v) -> Result<void> {
      if (k == "type") {
        auto t = one_of(v, {"Exact", "RegularExpression"});
        if (!t) return std::move(t).error();
        vm.type = *t == "Exact" ? ValueMatchType::Exact : ValueMatchType::RegularExpression;
        return ok();
      }
      auto s = str(v);
      if (!s) return std::move(s).error();
      if (k == "name") vm.name = header ? ascii_lower(*s) : *s;
      else vm.value = std::move(*s);
      return ok();
    }));
    out.push_back(std::move(vm));
    return ok();
  });
}

// GRPCMethodMatch as a path match (gRPC's :path is "/<service>/<method>"), always with method POST.
Result<void> Parser::grpc_match(const At& at, RouteMatch& m) {
  m.method = "POST";
  return fields(at, kGrpcMatchFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "headers") return value_matches(v, true, m.headers);
    std::string type = "Exact", service, method;
    std::optional<At> service_at, method_at;
    AMBIENT_TRY(fields(v, kGrpcMethodFields, {}, [&](std::string_view k, const At& mv) -> Result<void> {
      auto s = k == "type" ? one_of(mv, {"Exact", "RegularExpression"}) : str(mv);
      if (!s) return std::move(s).error();
      if (k == "type") type = *s;
      else if (k == "service") service = *s, service_at = mv;
      else method = *s, method_at = mv;
      return ok();
    }));
    if (service.empty() && method.empty()) return fail(v, "needs a service or a method (or both)");
    // GRPCRoute precedence counts the characters of a matching service and method; a regular expression
    // counts none (it ranks after every exact match).
    if (type == "Exact") {
      m.grpc_service_chars = static_cast<std::uint32_t>(service.size());
      m.grpc_method_chars = static_cast<std::uint32_t>(method.size());
    }
    if (type == "Exact") {
      // Gateway API: service ^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$, method ^[A-Za-z_][A-Za-z_0-9]*$.
      auto ident = [](std::string_view s) {
        return !s.empty() && !(s[0] >= '0' && s[0] <= '9') &&
               std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
      };
      if (!service.empty()) {
        std::string_view rest = service;
        if (rest.starts_with('.')) rest.remove_prefix(1);
        bool good = true;
        for (std::size_t pos = 0; good;) {
          const auto dot = rest.find('.', pos);
          good = ident(rest.substr(pos, dot == std::string_view::npos ? std::string_view::npos : dot - pos));
          if (dot == std::string_view::npos) break;
          pos = dot + 1;
        }
        if (!good) return fail(*service_at, fmt::format("\"{}\" is not a gRPC service name", service));
      }
      if (!method.empty() && !ident(method)) return fail(*method_at, fmt::format("\"{}\" is not a gRPC method name", method));
      if (!service.empty() && !method.empty()) m.path = PathMatch{PathMatchType::Exact, "/" + service + "/" + method};
      else if (!service.empty()) m.path = PathMatch{PathMatchType::PathPrefix, "/" + service};  // element-wise: "/svc/..."
      else m.path = PathMatch{PathMatchType::RegularExpression, "/[^/]+/" + regex_escape(method)};
    } else {
      m.path = PathMatch{PathMatchType::RegularExpression, "/" + (service.empty() ? std::string("[^/]+") : "(?:" + service + ")") +
                                                               "/" + (method.empty() ? std::string("[^/]+") : "(?:" + method + ")")};
    }
    return ok();
  });
}

Result<void> Parser::backend_ref(const At& at, bool mirror, BackendRef& b) {
  std::string group, kind = "Service";
  std::optional<At> kind_at;
  AMBIENT_TRY(fields(at, mirror ? kMirrorBackendFields : kBackendRefFields, {"name"}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "filters")
      return fail(v, "backendRefs[].filters (per-backend filters) are not supported by this waypoint; use the rule's filters",
                  ErrorKind::Unsupported);
    if (key == "port" || key == "weight") {
      auto n = key == "port" ? integer(v, 1, 65535, "a port") : integer(v, 0, 1000000, "a weight");
      if (!n) return std::move(n).error();
      if (key == "port") b.port = static_cast<std::uint16_t>(*n);
      else b.weight = static_cast<std::uint32_t>(*n);
      return ok();
    }
    auto s = str(v);
    if (!s) return std::move(s).error();
    if (key == "group") group = *s;
    else if (key == "kind") kind = *s, kind_at = v;
    else if (key == "name") b.name = *s;
    else b.ns = *s;
    return ok();
  }));
  if (group == "core") group = "";
  if (kind != "Service" || !group.empty())
    return fail(kind_at ? *kind_at : at, fmt::format("backend {} (group \"{}\") is not supported (only Service)", kind, group),
                ErrorKind::Unsupported);
  if (b.port == 0) return fail(at, "missing required field \"port\" (required for a Service backend)");
  if (b.ns.empty()) b.ns = ns_;
  return ok();
}

Result<void> Parser::header_modifier(const At& at, HeaderModifier& h) {
  return fields(at, kHeaderModifierFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
    std::vector<std::string> names;
    auto check_name = [&](const At& where, std::string name) -> Result<std::string> {
      if (!is_token(name)) return fail(where, fmt::format("\"{}\" is not a header name", name));
      name = ascii_lower(name);
      if (std::find(names.begin(), names.end(), name) != names.end())
        return fail(where, fmt::format("header \"{}\" named twice", name));
      names.push_back(name);
      return name;
    };
    if (v.n.IsSequence() && v.n.size() > kMaxModifierEntries)
      return fail(v, fmt::format("{} entries (at most {})", v.n.size(), kMaxModifierEntries));
    if (key == "remove") {
      return list(v, [&](const At& e, std::size_t) -> Result<void> {
        auto s = str(e);
        if (!s) return std::move(s).error();
        auto n = check_name(e, *s);
        if (!n) return std::move(n).error();
        h.remove.push_back(std::move(*n));
        return ok();
      });
    }
    auto& out = key == "set" ? h.set : h.add;
    return list(v, [&](const At& e, std::size_t) -> Result<void> {
      std::string name, value;
      std::optional<At> name_at;
      AMBIENT_TRY(fields(e, kHeaderFields, {"name", "value"}, [&](std::string_view k, const At& hv) -> Result<void> {
        auto s = str(hv);
        if (!s) return std::move(s).error();
        if (k == "name") name = *s, name_at = hv;
        else if (!safe_value(*s)) return fail(hv, "a header value must not contain CR, LF or NUL");
        else value = *s;
        return ok();
      }));
      auto n = check_name(*name_at, name);
      if (!n) return std::move(n).error();
      out.emplace_back(std::move(*n), std::move(value));
      return ok();
    });
  });
}

Result<void> Parser::path_modifier(const At& at, const std::vector<RouteMatch>& matches, PathModifier& p) {
  std::optional<At> type_at, full_at, prefix_at;
  AMBIENT_TRY(fields(at, kPathModifierFields, {"type"}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "type") type_at = v;
    else if (key == "replaceFullPath") full_at = v;
    else prefix_at = v;
    return ok();
  }));
  auto type = one_of(*type_at, {"ReplaceFullPath", "ReplacePrefixMatch"});
  if (!type) return std::move(type).error();
  const bool full = *type == "ReplaceFullPath";
  const auto& value_at = full ? full_at : prefix_at;
  const auto& other_at = full ? prefix_at : full_at;
  if (other_at) return fail(*other_at, fmt::format("not allowed with type {}", *type));
  if (!value_at) return fail(at, fmt::format("missing required field \"{}\" for type {}", full ? "replaceFullPath" : "replacePrefixMatch", *type));
  auto value = str(*value_at);
  if (!value) return std::move(value).error();
  if (!value->starts_with('/') || !safe_value(*value)) return fail(*value_at, fmt::format("\"{}\" must be a path starting with '/'", *value));
  if (!full) {
    const std::vector<RouteMatch> implicit(1);  // no matches: PathPrefix "/"
    const auto& ms = matches.empty() ? implicit : matches;
    for (std::size_t j = 0; j < ms.size(); ++j)
      if (ms[j].path && ms[j].path->type != PathMatchType::PathPrefix)
        return fail(*type_at, fmt::format("ReplacePrefixMatch needs every match of the rule to have a PathPrefix path "
                                          "(matches[{}] has {})", j,
                                          ms[j].path->type == PathMatchType::Exact ? "Exact" : "RegularExpression"));
  }
  p.type = full ? PathModifier::Type::ReplaceFullPath : PathModifier::Type::ReplacePrefixMatch;
  p.value = std::move(*value);
  return ok();
}

Result<void> Parser::filter(const At& at, bool grpc, const std::vector<RouteMatch>& matches, RouteFilters& f) {
  std::optional<At> type_at;
  std::vector<std::pair<std::string, At>> subs;
  AMBIENT_TRY(fields(at, kFilterFields, {"type"}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "type") type_at = v;
    else subs.emplace_back(std::string(key), v);
    return ok();
  }));
  auto type = str(*type_at);
  if (!type) return std::move(type).error();
  const Names supported = grpc ? kGrpcFilterTypes : kHttpFilterTypes;
  if (!contains(supported, *type))
    return fail(*type_at, fmt::format("filter type {} is not supported by this waypoint (supported: {})", *type, join(supported)),
                ErrorKind::Unsupported);
  std::string field = *type == "URLRewrite" ? "urlRewrite" : *type;
  field[0] = ascii_lower(field[0]);
  std::optional<At> sub;
  for (const auto& [k, v] : subs) {
    if (k != field) return fail(v, fmt::format("not allowed with type {} (it takes {})", *type, field));
    sub = v;
  }
  if (!sub) return fail(at, fmt::format("type {} needs field \"{}\"", *type, field));
  auto twice = [&](std::string_view what) { return fail(*type_at, fmt::format("a second {} filter (at most one per rule)", what)); };
  if (*type == "RequestHeaderModifier" || *type == "ResponseHeaderModifier") {
    auto& slot = *type == "RequestHeaderModifier" ? f.request_headers : f.response_headers;
    if (slot) return twice(*type);
    HeaderModifier h;
    AMBIENT_TRY(header_modifier(*sub, h));
    slot = std::move(h);
  } else if (*type == "RequestRedirect") {
    if (f.redirect) return twice(*type);
    if (f.rewrite) return fail(*type_at, "RequestRedirect and URLRewrite cannot be used in the same rule");
    RequestRedirect r;
    AMBIENT_TRY(fields(*sub, kRedirectFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
      if (key == "scheme") {
        auto s = one_of(v, {"http", "https"});
        if (!s) return std::move(s).error();
        r.scheme = std::move(*s);
      } else if (key == "hostname") {
        auto s = str(v);
        if (!s) return std::move(s).error();
        if (s->empty() || s->find_first_of("/:@ \r\n\t") != std::string::npos) return fail(v, fmt::format("\"{}\" is not a hostname", *s));
        r.hostname = std::move(*s);
      } else if (key == "port") {
        auto n = integer(v, 1, 65535, "a port");
        if (!n) return std::move(n).error();
        r.port = static_cast<std::uint16_t>(*n);
      } else if (key == "statusCode") {
        auto n = integer(v, 0, 999, "a status code");
        if (!n) return std::move(n).error();
        if (*n != 301 && *n != 302 && *n != 303 && *n != 307 && *n != 308)
          return fail(v, fmt::format("{} is not a redirect status (301, 302, 303, 307, 308)", *n));
        r.status_code = static_cast<int>(*n);
      } else {
        PathModifier p;
        AMBIENT_TRY(path_modifier(v, matches, p));
        r.path = std::move(p);
      }
      return ok();
    }));
    f.redirect = std::move(r);
  } else if (*type == "URLRewrite") {
    if (f.rewrite) return twice(*type);
    if (f.redirect) return fail(*type_at, "RequestRedirect and URLRewrite cannot be used in the same rule");
    UrlRewrite r;
    AMBIENT_TRY(fields(*sub, kRewriteFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
      if (key == "hostname") {
        auto s = str(v);
        if (!s) return std::move(s).error();
        if (s->empty() || s->find_first_of("/@ \r\n\t") != std::string::npos) return fail(v, fmt::format("\"{}\" is not a hostname", *s));
        r.hostname = std::move(*s);
        return ok();
      }
      PathModifier p;
      AMBIENT_TRY(path_modifier(v, matches, p));
      r.path = std::move(p);
      return ok();
    }));
    f.rewrite = std::move(r);
  } else {  // RequestMirror
    RequestMirror m;
    std::optional<At> percent_at;
    AMBIENT_TRY(fields(*sub, kMirrorFields, {"backendRef"}, [&](std::string_view key, const At& v) -> Result<void> {
      if (key == "backendRef") {
        m.backend.weight = 1;
        return backend_ref(v, true, m.backend);
      }
      if (percent_at) return fail(v, "percent and fraction exclude each other");
      percent_at = v;
      if (key == "percent") {
        auto n = integer(v, 0, 100, "a percentage");
        if (!n) return std::move(n).error();
        m.percent = static_cast<std::uint32_t>(*n);
        return ok();
      }
      std::uint64_t num = 0, den = 100;
      std::optional<At> num_at;
      AMBIENT_TRY(fields(v, kFractionFields, {"numerator"}, [&](std::string_view k, const At& fv) -> Result<void> {
        auto n = integer(fv, k == "numerator" ? 0 : 1, 1000000, k == "numerator" ? "a numerator" : "a denominator");
        if (!n) return std::move(n).error();
        (k == "numerator" ? num : den) = *n;
        if (k == "numerator") num_at = fv;
        return ok();
      }));
      if (num > den) return fail(*num_at, fmt::format("numerator {} is above the denominator {}", num, den));
      m.percent = static_cast<std::uint32_t>(num * 100 / den);
      return ok();
    }));
    f.mirrors.push_back(std::move(m));
  }
  return ok();
}

// RouteTable::build names "<ns>/<name>: rules[i]...: why"; place it at the line of the deepest known field.
Result<void> Parser::validate_route(const HttpRoute& route, int doc_line) const {
  auto t = RouteTable::build({route});
  if (t) return ok();
  Error e = std::move(t).error();
  std::string rest = e.context;
  const std::string id = route.ns + "/" + route.name + ": ";
  if (rest.starts_with(id)) rest.erase(0, id.size());
  if (!rest.starts_with("rules")) rest = "rules: " + rest;
  if (route.grpc)  // the converted path match came from the GRPCRoute's method match
    for (std::size_t p; (p = rest.find("].path.value")) != std::string::npos;) rest.replace(p, 12, "].method");
  rest = "spec." + rest;
  std::string path = rest.substr(0, rest.find(": "));
  int line = doc_line;
  while (!path.empty()) {
    if (auto it = field_lines_.find(path); it != field_lines_.end()) {
      line = it->second;
      break;
    }
    const auto cut = path.find_last_of(".[");
    path.resize(cut == std::string::npos ? 0 : cut);
  }
  e.context = fmt::format("{}:{}: {}{}", source_, line, prefix_, rest);
  return e;
}

// ---- AuthorizationPolicy ----

Result<void> Parser::policy(const At& spec, AttachedPolicy& p) {
  std::optional<At> rules_at;
  AMBIENT_TRY(fields(spec, kPolicySpecFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "selector")
      return fail(v, "a selector policy is enforced by ztunnel, not the waypoint; use targetRefs", ErrorKind::Unsupported);
    if (key == "provider")
      return fail(v, "provider (CUSTOM ext_authz) is not supported by this waypoint", ErrorKind::Unsupported);
    if (key == "targetRef") {
      PolicyTarget t;
      AMBIENT_TRY(target_ref(v, t));
      p.targets.push_back(std::move(t));
      return ok();
    }
    if (key == "targetRefs") {
      return list(v, [&](const At& e, std::size_t) -> Result<void> {
        PolicyTarget t;
        AMBIENT_TRY(target_ref(e, t));
        p.targets.push_back(std::move(t));
        return ok();
      });
    }
    if (key == "action") {
      auto s = str(v);
      if (!s) return std::move(s).error();
      auto a = parse_action(*s, v.path);
      if (!a) return wrap(v.line, std::move(a).error());
      p.policy.action = *a;
      return ok();
    }
    rules_at = v;
    return ok();
  }));
  if (p.targets.empty())
    return fail(spec, "no targetRefs: a policy without targetRefs selects workloads, which ztunnel enforces, not the "
                      "waypoint; use targetRefs", ErrorKind::Unsupported);
  if (!rules_at) return ok();
  return list(*rules_at, [&](const At& rule_at, std::size_t) -> Result<void> {
    L7Rule rule;
    AMBIENT_TRY(fields(rule_at, kPolicyRuleFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
      if (key == "from") {
        return list(v, [&](const At& e, std::size_t) -> Result<void> {
          Source s;
          AMBIENT_TRY(fields(e, kFromFields, {"source"}, [&](std::string_view, const At& src) {
            return fields(src, kSourceFields, {}, [&](std::string_view k, const At& f) -> Result<void> {
              if (k == "requestPrincipals" || k == "notRequestPrincipals")
                return fail(f, "needs RequestAuthentication (JWT), not supported", ErrorKind::Unsupported);
              if (k == "principals") return patterns(f, s.principals);
              if (k == "notPrincipals") return patterns(f, s.not_principals);
              if (k == "namespaces") return patterns(f, s.namespaces);
              if (k == "notNamespaces") return patterns(f, s.not_namespaces);
              // remoteIpBlocks (the client address from X-Forwarded-For / PROXY protocol in Istio) are treated as
              // ipBlocks: the waypoint knows only the source address the HBONE tunnel carries.
              if (k == "ipBlocks" || k == "remoteIpBlocks") return ip_blocks(f, s.ip_blocks);
              return ip_blocks(f, s.not_ip_blocks);  // notIpBlocks, notRemoteIpBlocks
            });
          }));
          rule.from.push_back(std::move(s));
          return ok();
        });
      }
      if (key == "to") {
        return list(v, [&](const At& e, std::size_t) -> Result<void> {
          Operation o;
          AMBIENT_TRY(fields(e, kToFields, {"operation"}, [&](std::string_view, const At& op) {
            return fields(op, kOperationFields, {}, [&](std::string_view k, const At& f) -> Result<void> {
              if (k == "hosts") return patterns(f, o.hosts);
              if (k == "notHosts") return patterns(f, o.not_hosts);
              if (k == "methods") return patterns(f, o.methods);
              if (k == "notMethods") return patterns(f, o.not_methods);
              if (k == "paths") return patterns(f, o.paths);
              if (k == "notPaths") return patterns(f, o.not_paths);
              if (k == "ports") return ports(f, o.ports);
              return ports(f, o.not_ports);
            });
          }));
          rule.to.push_back(std::move(o));
          return ok();
        });
      }
      return list(v, [&](const At& e, std::size_t) -> Result<void> {
        std::string key_s;
        std::vector<std::string> values, not_values;
        AMBIENT_TRY(fields(e, kConditionFields, {"key"}, [&](std::string_view k, const At& f) -> Result<void> {
          if (k == "key") {
            auto s = str(f);
            if (!s) return std::move(s).error();
            key_s = std::move(*s);
            return ok();
          }
          auto l = strings(f);
          if (!l) return std::move(l).error();
          (k == "values" ? values : not_values) = std::move(*l);
          return ok();
        }));
        auto c = parse_condition(key_s, values, not_values, e.path);
        if (!c) return wrap(e.line, std::move(c).error());
        rule.when.push_back(std::move(*c));
        return ok();
      });
    }));
    p.policy.rules.push_back(std::move(rule));
    return ok();
  });
}

Result<void> Parser::target_ref(const At& at, PolicyTarget& t) {
  std::optional<At> kind_at, ns_at;
  std::string ns;
  AMBIENT_TRY(fields(at, kTargetRefFields, {"kind", "name"}, [&](std::string_view key, const At& v) -> Result<void> {
    auto s = str(v);
    if (!s) return std::move(s).error();
    if (key == "group") t.group = *s;
    else if (key == "kind") t.kind = *s, kind_at = v;
    else if (key == "name") t.name = *s;
    else ns = *s, ns_at = v;
    return ok();
  }));
  if (t.group == "core") t.group = "";
  const bool good = (t.kind == "Service" && t.group.empty()) || (t.kind == "ServiceEntry" && t.group == "networking.istio.io") ||
                    (t.kind == "Gateway" && t.group == "gateway.networking.k8s.io");
  if (!good)
    return fail(*kind_at, fmt::format("target {} (group \"{}\") is not supported (supported: Service in group \"\", ServiceEntry "
                                      "in networking.istio.io, Gateway in gateway.networking.k8s.io)", t.kind, t.group),
                ErrorKind::Unsupported);
  if (ns_at && ns != ns_)
    return fail(*ns_at, fmt::format("namespace \"{}\" differs from the policy's \"{}\" (a policy targets its own namespace)", ns, ns_));
  return ok();
}

Result<void> Parser::patterns(const At& at, std::vector<StringPattern>& out) {
  return list(at, [&](const At& e, std::size_t) -> Result<void> {
    auto s = str(e);
    if (!s) return std::move(s).error();
    auto p = parse_pattern(*s, e.path);
    if (!p) return wrap(e.line, std::move(p).error());
    out.push_back(std::move(*p));
    return ok();
  });
}

Result<void> Parser::ip_blocks(const At& at, std::vector<IpBlock>& out) {
  return list(at, [&](const At& e, std::size_t) -> Result<void> {
    auto s = str(e);
    if (!s) return std::move(s).error();
    auto b = parse_ip_block(*s, e.path);
    if (!b) return wrap(e.line, std::move(b).error());
    out.push_back(*b);
    return ok();
  });
}

Result<void> Parser::ports(const At& at, std::vector<std::uint16_t>& out) {
  return list(at, [&](const At& e, std::size_t) -> Result<void> {
    auto n = integer(e, 1, 65535, "a port");
    if (!n) return std::move(n).error();
    out.push_back(static_cast<std::uint16_t>(*n));
    return ok();
  });
}

Result<void> parse_into(std::string_view yaml, std::string_view source, std::size_t* doc_counter, std::vector<Seen>* seen,
                        WaypointConfig* out) {
  if (yaml.size() > kMaxConfigFileBytes)
    return errorf(ErrorKind::ResourceExhausted, "{}: {} bytes (at most {})", source, yaml.size(), kMaxConfigFileBytes);
  // Bounded (documents, aliases, nesting: common/state/yaml_walker.h) before yaml-cpp builds a tree.
  auto docs = yaml::load_documents(yaml, source, kMaxConfigDocuments);
  if (!docs) return std::move(docs).error();
  try {
    for (const auto& doc : *docs) {
      if (doc.IsNull()) continue;  // an empty document (`---` alone)
      AMBIENT_TRY(Parser(source, doc_counter, seen, out).document(doc));
    }
  } catch (const std::exception& e) {  // yaml-cpp or allocation; not expected from the walk above
    return errorf(ErrorKind::Internal, "{}: {}", source, e.what());
  }
  return ok();
}

Result<std::string> read_file(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxConfigFileBytes)
    return errorf(ErrorKind::ResourceExhausted, "{}: {} bytes (at most {})", path, size, kMaxConfigFileBytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return make_error(err == ENOENT ? ErrorKind::NotFound : ErrorKind::Io, fmt::format("{}: cannot open: {}", path, std::strerror(err)), err);
  }
  std::string text;
  text.reserve(ec ? 0 : static_cast<std::size_t>(size));
  std::vector<char> buf(64 * 1024);
  while (in) {  // bounded even if the file grows while we read it
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    text.append(buf.data(), static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigFileBytes)
      return errorf(ErrorKind::ResourceExhausted, "{}: more than {} bytes", path, kMaxConfigFileBytes);
  }
  if (in.bad()) return errorf(ErrorKind::Io, "{}: read failed", path);
  return text;
}

}  // namespace

Result<WaypointConfig> parse_waypoint_config(std::string_view yaml, std::string_view source_name) {
  WaypointConfig out;
  std::size_t counter = 0;
  std::vector<Seen> seen;
  AMBIENT_TRY(parse_into(yaml, source_name, &counter, &seen, &out));
  return out;
}

Result<WaypointConfig> load_waypoint_config(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const auto& path : paths) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status))
      return make_error(ErrorKind::NotFound, fmt::format("{}: cannot open: {}", path, ec ? ec.message() : "no such file or directory"));
    if (!std::filesystem::is_directory(status)) {
      files.push_back(path);
      continue;
    }
    std::vector<std::string> in_dir;
    std::filesystem::directory_iterator it(path, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!(name.ends_with(".yaml") || name.ends_with(".yml"))) continue;
      std::error_code fec;
      if (!std::filesystem::is_regular_file(it->path(), fec)) continue;  // follows symlinks (ConfigMap mounts)
      in_dir.push_back(it->path().string());
    }
    if (ec) return make_error(ErrorKind::Io, fmt::format("{}: cannot list: {}", path, ec.message()), ec.value());
    std::sort(in_dir.begin(), in_dir.end());
    files.insert(files.end(), in_dir.begin(), in_dir.end());
  }
  WaypointConfig out;
  std::size_t counter = 0;
  std::vector<Seen> seen;
  for (const auto& file : files) {
    auto text = read_file(file);
    if (!text) return std::move(text).error();
    AMBIENT_TRY(parse_into(*text, file, &counter, &seen, &out));
  }
  return out;
}

}  // namespace ambient::waypoint
