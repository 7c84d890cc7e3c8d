#include "common/state/config_dump.h"

#include "common/base/json.h"

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "common/state/enum_names.h"
#include "common/state/ip_addr.h"

namespace ambient::state {
namespace {

namespace wl = istio::workload;
namespace sec = istio::security;

// A minimal streaming JSON writer: objects, arrays, strings, unsigned integers and booleans.
class JsonWriter {
 public:
  explicit JsonWriter(bool pretty) : pretty_(pretty) {}

  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }

  void key(std::string_view k) {
    separate();
    quote(k);
    out_ += pretty_ ? ": " : ":";
    after_key_ = true;
  }
  void value(std::string_view v) {
    separate();
    quote(v);
  }
  void value(const char* v) { value(std::string_view(v)); }
  void value(std::uint64_t v) {
    separate();
    out_ += std::to_string(v);
  }
  void value(bool v) {
    separate();
    out_ += v ? "true" : "false";
  }

  // key + value in one call.
  template <typename T>
  void field(std::string_view k, const T& v) {
    key(k);
    value(v);
  }

  std::string take() { return std::move(out_); }

 private:
  void open(char c) {
    separate();
    out_ += c;
    first_.push_back(true);
  }
  void close(char c) {
    const bool empty = first_.back();
    first_.pop_back();
    if (pretty_ && !empty) newline();
    out_ += c;
  }
  // Comma and indentation before a value or key (not before the value that follows a key).
  void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (first_.empty()) return;
    if (!first_.back()) out_ += ',';
    first_.back() = false;
    if (pretty_) newline();
  }
  void newline() {
    out_ += '\n';
    out_.append(first_.size() * 2, ' ');
  }
  void quote(std::string_view s) { json::append_string(out_, s); }


  bool pretty_;
  bool after_key_ = false;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  std::string out_;
};

std::string ip_text(const std::string& bytes) {
  auto ip = IpAddr::from_bytes(bytes);
  return ip ? ip->to_string() : fmt::format("<{} bytes>", bytes.size());
}

// The enum's spelling, or its number when it has none (only for values validation would refuse).
template <typename E, std::size_t N>
std::string enum_text(const names::EnumName<E> (&table)[N], int value) {
  const std::string_view n = names::name_of(table, value);
  return n.empty() ? std::to_string(value) : std::string(n);
}

void write_gateway(JsonWriter& j, std::string_view k, const wl::GatewayAddress& g) {
  j.key(k);
  j.begin_object();
  if (g.has_address()) {
    j.field("destination", g.address().network() + "/" + ip_text(g.address().address()));
  } else if (g.has_hostname()) {
    j.field("destination", g.hostname().namespace_() + "/" + g.hostname().hostname());
  }
  j.field("hboneMtlsPort", std::uint64_t{g.hbone_mtls_port()});
  j.end_object();
}

template <typename Ports>
void write_port_map(JsonWriter& j, const Ports& ports) {
  j.begin_object();
  for (const wl::Port& p : ports) j.field(std::to_string(p.service_port()), std::uint64_t{p.target_port()});
  j.end_object();
}

void write_string_field(JsonWriter& j, std::string_view k, const std::string& v) {
  if (!v.empty()) j.field(k, v);
}

template <typename Strings>
void write_strings(JsonWriter& j, std::string_view k, const Strings& v) {
  if (v.empty()) return;
  j.key(k);
  j.begin_array();
  for (const std::string& s : v) j.value(s);
  j.end_array();
}

void write_workload(JsonWriter& j, const Workload& w) {
  j.begin_object();
  j.field("uid", w.uid());
  j.field("name", w.name());
  j.field("namespace", w.namespace_());
  j.key("workloadIps");
  j.begin_array();
  for (const std::string& a : w.addresses()) j.value(ip_text(a));
  j.end_array();
  j.field("protocol", enum_text(names::kProtocols, w.tunnel_protocol()));
  j.field("networkMode", enum_text(names::kNetworkModes, w.network_mode()));
  j.field("trustDomain", workload_trust_domain(w));
  j.field("serviceAccount", workload_service_account(w));
  write_string_field(j, "network", w.network());
  write_string_field(j, "node", w.node());
  write_string_field(j, "hostname", w.hostname());
  write_string_field(j, "workloadName", w.workload_name());
  j.field("workloadType", enum_text(names::kWorkloadTypes, w.workload_type()));
  write_string_field(j, "canonicalName", w.canonical_name());
  write_string_field(j, "canonicalRevision", w.canonical_revision());
  if (w.has_waypoint()) write_gateway(j, "waypoint", w.waypoint());
  if (w.has_network_gateway()) write_gateway(j, "networkGateway", w.network_gateway());
  if (w.native_tunnel()) j.field("nativeTunnel", true);
  if (w.has_application_tunnel()) {
    j.key("applicationTunnel");
    j.begin_object();
    j.field("protocol", enum_text(names::kTunnelProtocols, w.application_tunnel().protocol()));
    if (w.application_tunnel().port() != 0) j.field("port", std::uint64_t{w.application_tunnel().port()});
    j.end_object();
  }
  write_strings(j, "authorizationPolicies", w.authorization_policies());
  j.field("status", enum_text(names::kStatuses, w.status()));
  j.field("clusterId", workload_cluster_id(w));
  if (w.has_locality()) {
    j.key("locality");
    j.begin_object();
    j.field("region", w.locality().region());
    j.field("zone", w.locality().zone());
    j.field("subzone", w.locality().subzone());
    j.end_object();
  }
  j.field("capacity", std::uint64_t{workload_capacity(w)});
  if (!w.services().empty()) {
    // protobuf maps iterate in no particular order: sort the keys for a stable dump.
    std::vector<const std::string*> keys;
    for (const auto& [k, v] : w.services()) keys.push_back(&k);
    std::sort(keys.begin(), keys.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
    j.key("services");
    j.begin_object();
    for (const std::string* k : keys) {
      j.key(*k);
      write_port_map(j, w.services().at(*k).ports());
    }
    j.end_object();
  }
  j.end_object();
}

void write_service(JsonWriter& j, const Service& s, std::span<const Endpoint> endpoints) {
  j.begin_object();
  j.field("name", s.name());
  j.field("namespace", s.namespace_());
  j.field("hostname", s.hostname());
  j.key("vips");
  j.begin_array();
  for (const auto& a : s.addresses()) {
    std::string v = a.network() + "/" + ip_text(a.address());
    if (a.has_length()) v += "/" + std::to_string(a.length());
    j.value(v);
  }
  j.end_array();
  j.key("ports");
  write_port_map(j, s.ports());
  j.key("endpoints");
  j.begin_object();
  for (const Endpoint& e : endpoints) {
    j.key(e.workload->uid());
    j.begin_object();
    j.field("workloadUid", e.workload->uid());
    j.key("port");
    if (e.ports != nullptr) {
      write_port_map(j, e.ports->ports());
    } else {
      j.begin_object();
      j.end_object();
    }
    j.field("status", enum_text(names::kStatuses, e.workload->status()));
    j.end_object();
  }
  j.end_object();
  write_strings(j, "subjectAltNames", s.subject_alt_names());
  if (s.has_waypoint()) write_gateway(j, "waypoint", s.waypoint());
  if (s.has_load_balancing()) {
    const auto& lb = s.load_balancing();
    j.key("loadBalancer");
    j.begin_object();
    j.key("routingPreferences");
    j.begin_array();
    for (int r : lb.routing_preference()) j.value(enum_text(names::kScopes, r));
    j.end_array();
    j.field("mode", enum_text(names::kModes, lb.mode()));
    j.field("healthPolicy", enum_text(names::kHealthPolicies, lb.health_policy()));
    j.end_object();
  }
  if (s.ip_families() != wl::AUTOMATIC) j.field("ipFamilies", enum_text(names::kIpFamilies, s.ip_families()));
  if (s.canonical()) j.field("canonical", true);
  if (s.visibility() != wl::Service::PUBLIC) j.field("visibility", enum_text(names::kVisibilities, s.visibility()));
  j.end_object();
}

template <typename Matches>
void write_string_matches(JsonWriter& j, std::string_view k, const Matches& ms) {
  if (ms.empty()) return;
  j.key(k);
  j.begin_array();
  for (const sec::StringMatch& m : ms) {
    j.begin_object();
    switch (m.match_type_case()) {
      case sec::StringMatch::kExact: j.field("Exact", m.exact()); break;
      case sec::StringMatch::kPrefix: j.field("Prefix", m.prefix()); break;
      case sec::StringMatch::kSuffix: j.field("Suffix", m.suffix()); break;
      case sec::StringMatch::kPresence:
        j.key("Presence");
        j.begin_object();
        j.end_object();
        break;
      case sec::StringMatch::MATCH_TYPE_NOT_SET: break;
    }
    j.end_object();
  }
  j.end_array();
}

template <typename Addresses>
void write_cidrs(JsonWriter& j, std::string_view k, const Addresses& as) {
  if (as.empty()) return;
  j.key(k);
  j.begin_array();
  for (const sec::Address& a : as) j.value(ip_text(a.address()) + "/" + std::to_string(a.length()));
  j.end_array();
}

template <typename Ports>
void write_match_ports(JsonWriter& j, std::string_view k, const Ports& ps) {
  if (ps.empty()) return;
  j.key(k);
  j.begin_array();
  for (std::uint32_t p : ps) j.value(std::uint64_t{p});
  j.end_array();
}

template <typename Accounts>
void write_accounts(JsonWriter& j, std::string_view k, const Accounts& as) {
  if (as.empty()) return;
  j.key(k);
  j.begin_array();
  for (const sec::ServiceAccountMatch& a : as) {
    j.begin_object();
    j.field("namespace", a.namespace_());
    j.field("serviceAccount", a.service_account());
    j.end_object();
  }
  j.end_array();
}

void write_match(JsonWriter& j, const sec::Match& m) {
  j.begin_object();
  write_string_matches(j, "namespaces", m.namespaces());
  write_string_matches(j, "notNamespaces", m.not_namespaces());
  write_string_matches(j, "principals", m.principals());
  write_string_matches(j, "notPrincipals", m.not_principals());
  write_accounts(j, "serviceAccounts", m.service_accounts());
  write_accounts(j, "notServiceAccounts", m.not_service_accounts());
  write_cidrs(j, "sourceIps", m.source_ips());
  write_cidrs(j, "notSourceIps", m.not_source_ips());
  write_cidrs(j, "destinationIps", m.destination_ips());
  write_cidrs(j, "notDestinationIps", m.not_destination_ips());
  write_match_ports(j, "destinationPorts", m.destination_ports());
  write_match_ports(j, "notDestinationPorts", m.not_destination_ports());
  j.end_object();
}

void write_policy(JsonWriter& j, const Authorization& a) {
  j.begin_object();
  j.field("name", a.name());
  j.field("namespace", a.namespace_());
  j.field("scope", enum_text(names::kPolicyScopes, a.scope()));
  j.field("action", enum_text(names::kActions, a.action()));
  j.field("dryRun", a.dry_run());
  j.key("rules");
  j.begin_array();
  for (const sec::Rule& r : a.rules()) {
    j.begin_array();
    for (const sec::Clause& c : r.clauses()) {
      j.begin_array();
      for (const sec::Match& m : c.matches()) write_match(j, m);
      j.end_array();
    }
    j.end_array();
  }
  j.end_array();
  j.end_object();
}

}  // namespace

std::string config_dump_json(const Snapshot& snapshot, bool pretty) {
  JsonWriter j(pretty);
  j.begin_object();
  j.key("workloads");
  j.begin_array();
  for (const auto& [uid, w] : snapshot.workloads()) write_workload(j, *w);
  j.end_array();
  j.key("services");
  j.begin_array();
  for (const auto& [key, s] : snapshot.services()) write_service(j, *s, snapshot.endpoints(*s));
  j.end_array();
  j.key("policies");
  j.begin_array();
  for (const auto& [key, p] : snapshot.policies()) write_policy(j, *p);
  j.end_array();
  j.end_object();
  std::string out = j.take();
  if (pretty) out += '\n';
  return out;
}

}  // namespace ambient::state
