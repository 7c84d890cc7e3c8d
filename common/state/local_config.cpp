#include "common/state/local_config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "common/state/enum_names.h"
#include "common/state/ip_addr.h"
#include "common/state/resource.h"
#include "common/state/yaml_walker.h"

namespace ambient::state {
namespace {

namespace wl = istio::workload;
namespace sec = istio::security;

using yaml::At;
using yaml::contains;
using yaml::join;
using yaml::kind_of;
using yaml::line_of;
using yaml::Names;

// Parsing walks the yaml-cpp tree by hand (yaml_walker.h) and builds the protos directly; each resource then
// goes through resource.h check() so the file and xDS agree on validity.

using namespace names;  // EnumName and the enum spelling tables

const Names kTopFields = {"workloads", "services", "policies"};
const Names kWorkloadFields = {
    "uid", "name", "namespace", "serviceAccount", "trustDomain", "workloadIps", "protocol", "networkMode", "node",
    "network", "waypoint", "networkGateway", "applicationTunnel", "authorizationPolicies", "canonicalName",
    "canonicalRevision", "workloadName", "workloadType", "status", "clusterId", "locality", "capacity", "hostname",
    "nativeTunnel", "services"};
const Names kGatewayFields = {"destination", "hboneMtlsPort"};
const Names kAppTunnelFields = {"protocol", "port"};
const Names kLocalityFields = {"region", "zone", "subzone"};
const Names kServiceFields = {"name", "namespace", "hostname", "vips", "ports", "subjectAltNames", "waypoint",
                              "loadBalancer", "ipFamilies", "canonical", "visibility", "endpoints"};
const Names kLoadBalancerFields = {"routingPreferences", "mode", "healthPolicy"};
const Names kPolicyFields = {"name", "namespace", "scope", "action", "dryRun", "rules"};
const Names kMatchFields = {"namespaces", "notNamespaces", "principals", "notPrincipals", "serviceAccounts",
                            "notServiceAccounts", "sourceIps", "notSourceIps", "destinationIps",
                            "notDestinationIps", "destinationPorts", "notDestinationPorts"};
const Names kServiceAccountFields = {"namespace", "serviceAccount"};
const Names kStringMatchKinds = {"Exact", "Prefix", "Suffix", "Presence"};

constexpr std::uint32_t kDefaultHbonePort = 15008;

class Parser : private yaml::Walker {
 public:
  explicit Parser(std::string_view source) : yaml::Walker(source) {}

  Result<LocalConfig> parse(const YAML::Node& root);

 private:
  Result<std::uint32_t> port(const At& at, std::uint32_t min = 1) const;
  Result<IpAddr> ip(const At& at) const;
  Result<IpPrefix> cidr(const At& at) const;
  template <typename E, std::size_t N>
  Result<E> enumeration(const At& at, const EnumName<E> (&table)[N]) const;

  Result<void> strings(const At& at, google::protobuf::RepeatedPtrField<std::string>* out) const;
  Result<void> port_map(const At& at, google::protobuf::RepeatedPtrField<wl::Port>* out) const;
  Result<void> gateway(const At& at, wl::GatewayAddress* out) const;
  Result<void> workload(const At& at, wl::Workload* w) const;
  Result<void> service(const At& at, wl::Service* s) const;
  Result<void> policy(const At& at, sec::Authorization* a) const;
  Result<void> match(const At& at, sec::Match* m) const;
  Result<void> string_matches(const At& at, google::protobuf::RepeatedPtrField<sec::StringMatch>* out) const;
  Result<void> cidrs(const At& at, google::protobuf::RepeatedPtrField<sec::Address>* out) const;
  Result<void> match_ports(const At& at, google::protobuf::RepeatedField<std::uint32_t>* out) const;
  Result<void> accounts(const At& at, google::protobuf::RepeatedPtrField<sec::ServiceAccountMatch>* out) const;
};

Result<std::uint32_t> Parser::port(const At& at, std::uint32_t min) const {
  auto p = integer(at, min, 65535, "a port");
  if (!p) return std::move(p).error();
  return static_cast<std::uint32_t>(*p);
}

Result<IpAddr> Parser::ip(const At& at) const {
  auto s = str(at);
  if (!s) return std::move(s).error();
  auto a = IpAddr::parse(*s);
  if (!a) return fail(at, fmt::format("\"{}\" is not an IP address", *s));
  return *a;
}

Result<IpPrefix> Parser::cidr(const At& at) const {
  auto s = str(at);
  if (!s) return std::move(s).error();
  auto p = IpPrefix::parse(*s);
  if (!p) return fail(at, fmt::format("\"{}\" is not an IP address or CIDR range", *s));
  return *p;
}

template <typename E, std::size_t N>
Result<E> Parser::enumeration(const At& at, const EnumName<E> (&table)[N]) const {
  auto s = str(at);
  if (!s) return std::move(s).error();
  std::string allowed;
  for (const auto& e : table) {
    if (e.name == *s) return e.value;
    if (!allowed.empty()) allowed += ", ";
    allowed += e.name;
  }
  return fail(at, fmt::format("\"{}\" is not one of {}", *s, allowed));
}

Result<void> Parser::strings(const At& at, google::protobuf::RepeatedPtrField<std::string>* out) const {
  return list(at, [&](const At& e, std::size_t) -> Result<void> {
    auto s = str(e);
    if (!s) return std::move(s).error();
    out->Add(std::move(*s));
    return ok();
  });
}

// {<service port>: <target port>} -> Ports sorted by service port. Target 0 = named port.
Result<void> Parser::port_map(const At& at, google::protobuf::RepeatedPtrField<wl::Port>* out) const {
  std::map<std::uint32_t, std::uint32_t> ports;
  AMBIENT_TRY(entries(at, [&](const At& key, const At& value) -> Result<void> {
    auto sp = port(key);
    if (!sp) return std::move(sp).error();
    auto tp = port(value, 0);
    if (!tp) return std::move(tp).error();
    if (!ports.emplace(*sp, *tp).second) return fail(key, fmt::format("service port {} listed twice", *sp));
    return ok();
  }));
  for (const auto& [sp, tp] : ports) {
    wl::Port* p = out->Add();
    p->set_service_port(sp);
    p->set_target_port(tp);
  }
  return ok();
}

// ztunnel's GatewayAddress: `destination` is "network/IP" when the part after the first '/' is an
// IP address, else "namespace/hostname".
Result<void> Parser::gateway(const At& at, wl::GatewayAddress* out) const {
  out->set_hbone_mtls_port(kDefaultHbonePort);
  return fields(at, kGatewayFields, {"destination"}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "hboneMtlsPort") {
      auto p = port(v);
      if (!p) return std::move(p).error();
      out->set_hbone_mtls_port(*p);
      return ok();
    }
    auto s = str(v);
    if (!s) return std::move(s).error();
    const auto slash = s->find('/');
    if (slash == std::string::npos) {
      return fail(v, fmt::format("\"{}\" is neither \"network/IP\" nor \"namespace/hostname\"", *s));
    }
    const std::string_view rest = std::string_view(*s).substr(slash + 1);
    if (auto a = IpAddr::parse(rest)) {
      out->mutable_address()->set_network(s->substr(0, slash));
      out->mutable_address()->set_address(a->to_bytes());
      return ok();
    }
    auto nh = split_namespaced_host(*s);
    if (!nh) return fail(v, fmt::format("\"{}\" is neither \"network/IP\" nor \"namespace/hostname\"", *s));
    out->mutable_hostname()->set_namespace_(std::string(nh->first));
    out->mutable_hostname()->set_hostname(std::string(nh->second));
    return ok();
  });
}

Result<void> Parser::workload(const At& at, wl::Workload* w) const {
  return fields(at, kWorkloadFields, {"uid", "namespace"}, [&](std::string_view key, const At& v) -> Result<void> {
    using Setter = void (wl::Workload::*)(const std::string&);
    static const std::map<std::string_view, Setter> kStrings = {
        {"uid", &wl::Workload::set_uid},
        {"name", &wl::Workload::set_name},
        {"namespace", &wl::Workload::set_namespace_},
        {"serviceAccount", &wl::Workload::set_service_account},
        {"trustDomain", &wl::Workload::set_trust_domain},
        {"node", &wl::Workload::set_node},
        {"network", &wl::Workload::set_network},
        {"canonicalName", &wl::Workload::set_canonical_name},
        {"canonicalRevision", &wl::Workload::set_canonical_revision},
        {"workloadName", &wl::Workload::set_workload_name},
        {"clusterId", &wl::Workload::set_cluster_id},
        {"hostname", &wl::Workload::set_hostname},
    };
    if (auto it = kStrings.find(key); it != kStrings.end()) {
      auto s = str(v);
      if (!s) return std::move(s).error();
      (w->*(it->second))(*s);
      return ok();
    }
    if (key == "workloadIps") {
      return list(v, [&](const At& e, std::size_t) -> Result<void> {
        auto a = ip(e);
        if (!a) return std::move(a).error();
        w->add_addresses(a->to_bytes());
        return ok();
      });
    }
    if (key == "protocol") {
      auto p = enumeration(v, kProtocols);
      if (!p) return std::move(p).error();
      w->set_tunnel_protocol(*p);
      return ok();
    }
    if (key == "networkMode") {
      auto m = enumeration(v, kNetworkModes);
      if (!m) return std::move(m).error();
      w->set_network_mode(*m);
      return ok();
    }
    if (key == "workloadType") {
      auto t = enumeration(v, kWorkloadTypes);
      if (!t) return std::move(t).error();
      w->set_workload_type(*t);
      return ok();
    }
    if (key == "status") {
      auto s = enumeration(v, kStatuses);
      if (!s) return std::move(s).error();
      w->set_status(*s);
      return ok();
    }
    if (key == "nativeTunnel") {
      auto b = boolean(v);
      if (!b) return std::move(b).error();
      w->set_native_tunnel(*b);
      return ok();
    }
    if (key == "capacity") {
      auto c = integer(v, 1, UINT32_MAX, "a capacity");
      if (!c) return std::move(c).error();
      w->mutable_capacity()->set_value(static_cast<std::uint32_t>(*c));
      return ok();
    }
    if (key == "waypoint") return gateway(v, w->mutable_waypoint());
    if (key == "networkGateway") return gateway(v, w->mutable_network_gateway());
    if (key == "applicationTunnel") {
      auto* t = w->mutable_application_tunnel();
      return fields(v, kAppTunnelFields, {"protocol"}, [&](std::string_view k, const At& x) -> Result<void> {
        if (k == "protocol") {
          auto p = enumeration(x, kTunnelProtocols);
          if (!p) return std::move(p).error();
          t->set_protocol(*p);
          return ok();
        }
        auto p = port(x);
        if (!p) return std::move(p).error();
        t->set_port(*p);
        return ok();
      });
    }
    if (key == "locality") {
      auto* l = w->mutable_locality();
      return fields(v, kLocalityFields, {}, [&](std::string_view k, const At& x) -> Result<void> {
        auto s = str(x);
        if (!s) return std::move(s).error();
        if (k == "region") l->set_region(*s);
        else if (k == "zone") l->set_zone(*s);
        else l->set_subzone(*s);
        return ok();
      });
    }
    if (key == "authorizationPolicies") return strings(v, w->mutable_authorization_policies());
    // services: {"namespace/hostname": {<service port>: <target port>}}
    return entries(v, [&](const At& k, const At& ports) -> Result<void> {
      const std::string& name = k.n.Scalar();
      if (!split_namespaced_host(name)) return fail(k, fmt::format("\"{}\" is not \"namespace/hostname\"", name));
      return port_map(ports, (*w->mutable_services())[name].mutable_ports());
    });
  });
}

Result<void> Parser::service(const At& at, wl::Service* s) const {
  return fields(at, kServiceFields, {"namespace", "hostname"}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "name" || key == "namespace" || key == "hostname") {
      auto x = str(v);
      if (!x) return std::move(x).error();
      if (key == "name") s->set_name(*x);
      else if (key == "namespace") s->set_namespace_(*x);
      else s->set_hostname(*x);
      return ok();
    }
    if (key == "vips") {
      // "network/IP", or "network/IP/len" for a CIDR VIP (NetworkAddress.length).
      return list(v, [&](const At& e, std::size_t) -> Result<void> {
        auto x = str(e);
        if (!x) return std::move(x).error();
        const auto slash = x->find('/');
        std::optional<IpPrefix> p;
        if (slash != std::string::npos) p = IpPrefix::parse(std::string_view(*x).substr(slash + 1));
        if (!p) return fail(e, fmt::format("\"{}\" is not \"network/IP\"", *x));
        auto* a = s->add_addresses();
        a->set_network(x->substr(0, slash));
        a->set_address(p->addr.to_bytes());
        if (x->find('/', slash + 1) != std::string::npos) a->set_length(p->len);
        return ok();
      });
    }
    if (key == "ports") return port_map(v, s->mutable_ports());
    if (key == "subjectAltNames") return strings(v, s->mutable_subject_alt_names());
    if (key == "waypoint") return gateway(v, s->mutable_waypoint());
    if (key == "loadBalancer") {
      auto* lb = s->mutable_load_balancing();
      return fields(v, kLoadBalancerFields, {}, [&](std::string_view k, const At& x) -> Result<void> {
        if (k == "routingPreferences") {
          return list(x, [&](const At& e, std::size_t) -> Result<void> {
            auto sc = enumeration(e, kScopes);
            if (!sc) return std::move(sc).error();
            lb->add_routing_preference(*sc);
            return ok();
          });
        }
        if (k == "mode") {
          auto m = enumeration(x, kModes);
          if (!m) return std::move(m).error();
          lb->set_mode(*m);
          return ok();
        }
        auto h = enumeration(x, kHealthPolicies);
        if (!h) return std::move(h).error();
        lb->set_health_policy(*h);
        return ok();
      });
    }
    if (key == "ipFamilies") {
      auto f = enumeration(v, kIpFamilies);
      if (!f) return std::move(f).error();
      s->set_ip_families(*f);
      return ok();
    }
    if (key == "canonical") {
      auto b = boolean(v);
      if (!b) return std::move(b).error();
      s->set_canonical(*b);
      return ok();
    }
    if (key == "visibility") {
      auto x = enumeration(v, kVisibilities);
      if (!x) return std::move(x).error();
      s->set_visibility(*x);
      return ok();
    }
    // "endpoints": ztunnel accepts endpoint maps here; this data plane derives endpoints from
    // workloads only (as xDS delivers them), so say where to put them instead of ignoring them.
    return fail(v, "not supported: list the service under each workload's `services` map instead");
  });
}

Result<void> Parser::string_matches(const At& at, google::protobuf::RepeatedPtrField<sec::StringMatch>* out) const {
  return list(at, [&](const At& e, std::size_t) -> Result<void> {
    sec::StringMatch* m = out->Add();
    // Tagged form (serde_yaml 0.9): `!Exact foo`, `!Presence []`.
    const std::string& tag = e.n.Tag();
    if (tag.size() > 1 && tag[0] == '!') {
      const std::string_view kind = std::string_view(tag).substr(1);
      if (!contains(kStringMatchKinds, kind)) {
        return fail(e, fmt::format("\"{}\" is not one of {}", kind, join(kStringMatchKinds)));
      }
      if (kind == "Presence") {
        const bool empty = e.n.IsNull() || (e.n.IsScalar() && e.n.Scalar().empty()) ||
                           ((e.n.IsMap() || e.n.IsSequence()) && e.n.size() == 0);
        if (!empty) return fail(e, "Presence takes no value (write !Presence [])");
        m->mutable_presence();
        return ok();
      }
      auto s = str(e);
      if (!s) return std::move(s).error();
      if (kind == "Exact") m->set_exact(*s);
      else if (kind == "Prefix") m->set_prefix(*s);
      else m->set_suffix(*s);
      return ok();
    }
    // Map form: {Exact: foo} | {Prefix: foo} | {Suffix: foo} | {Presence: {}} (or [] or null).
    if (!e.n.IsMap() || e.n.size() != 1) {
      return fail(e, "expected one of {Exact: x}, {Prefix: x}, {Suffix: x}, {Presence: {}}");
    }
    const auto kv = *e.n.begin();
    const std::string kind = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
    const At v{kv.second, e.path + "." + kind, line_of(kv.second, e.line)};
    if (kind == "Presence") {
      const bool empty = kv.second.IsNull() || ((kv.second.IsMap() || kv.second.IsSequence()) && kv.second.size() == 0);
      if (!empty) return fail(v, "Presence takes no value (write {Presence: {}})");
      m->mutable_presence();
      return ok();
    }
    if (!contains(kStringMatchKinds, kind)) {
      return fail(e, fmt::format("\"{}\" is not one of {}", kind, join(kStringMatchKinds)));
    }
    auto s = str(v);
    if (!s) return std::move(s).error();
    if (kind == "Exact") m->set_exact(*s);
    else if (kind == "Prefix") m->set_prefix(*s);
    else m->set_suffix(*s);
    return ok();
  });
}

Result<void> Parser::cidrs(const At& at, google::protobuf::RepeatedPtrField<sec::Address>* out) const {
  return list(at, [&](const At& e, std::size_t) -> Result<void> {
    auto p = cidr(e);
    if (!p) return std::move(p).error();
    sec::Address* a = out->Add();
    a->set_address(p->addr.to_bytes());
    a->set_length(p->len);
    return ok();
  });
}

Result<void> Parser::match_ports(const At& at, google::protobuf::RepeatedField<std::uint32_t>* out) const {
  return list(at, [&](const At& e, std::size_t) -> Result<void> {
    auto p = port(e);
    if (!p) return std::move(p).error();
    out->Add(*p);
    return ok();
  });
}

Result<void> Parser::accounts(const At& at,
                              google::protobuf::RepeatedPtrField<sec::ServiceAccountMatch>* out) const {
  return list(at, [&](const At& e, std::size_t) -> Result<void> {
    sec::ServiceAccountMatch* m = out->Add();
    return fields(e, kServiceAccountFields, {"namespace", "serviceAccount"},
                  [&](std::string_view k, const At& x) -> Result<void> {
                    auto s = str(x);
                    if (!s) return std::move(s).error();
                    if (k == "namespace") m->set_namespace_(*s);
                    else m->set_service_account(*s);
                    return ok();
                  });
  });
}

Result<void> Parser::match(const At& at, sec::Match* m) const {
  return fields(at, kMatchFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "namespaces") return string_matches(v, m->mutable_namespaces());
    if (key == "notNamespaces") return string_matches(v, m->mutable_not_namespaces());
    if (key == "principals") return string_matches(v, m->mutable_principals());
    if (key == "notPrincipals") return string_matches(v, m->mutable_not_principals());
    if (key == "serviceAccounts") return accounts(v, m->mutable_service_accounts());
    if (key == "notServiceAccounts") return accounts(v, m->mutable_not_service_accounts());
    if (key == "sourceIps") return cidrs(v, m->mutable_source_ips());
    if (key == "notSourceIps") return cidrs(v, m->mutable_not_source_ips());
    if (key == "destinationIps") return cidrs(v, m->mutable_destination_ips());
    if (key == "notDestinationIps") return cidrs(v, m->mutable_not_destination_ips());
    if (key == "destinationPorts") return match_ports(v, m->mutable_destination_ports());
    return match_ports(v, m->mutable_not_destination_ports());
  });
}

Result<void> Parser::policy(const At& at, sec::Authorization* a) const {
  return fields(at, kPolicyFields, {"name", "scope", "action"}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "name" || key == "namespace") {
      auto s = str(v);
      if (!s) return std::move(s).error();
      if (key == "name") a->set_name(*s);
      else a->set_namespace_(*s);
      return ok();
    }
    if (key == "scope") {
      auto s = enumeration(v, kPolicyScopes);
      if (!s) return std::move(s).error();
      a->set_scope(*s);
      return ok();
    }
    if (key == "action") {
      auto x = enumeration(v, kActions);
      if (!x) return std::move(x).error();
      a->set_action(*x);
      return ok();
    }
    if (key == "dryRun") {
      auto b = boolean(v);
      if (!b) return std::move(b).error();
      a->set_dry_run(*b);
      return ok();
    }
    // rules: [[[match]]] = rules -> clauses -> matches
    return list(v, [&](const At& rule, std::size_t) -> Result<void> {
      sec::Rule* r = a->add_rules();
      return list(rule, [&](const At& clause, std::size_t) -> Result<void> {
        sec::Clause* c = r->add_clauses();
        return list(clause, [&](const At& m, std::size_t) -> Result<void> { return match(m, c->add_matches()); });
      });
    });
  });
}

Result<LocalConfig> Parser::parse(const YAML::Node& root) {
  LocalConfig out;
  std::vector<istio::workload::Address> services;
  std::map<std::string, std::string, std::less<>> workload_keys, service_keys, policy_keys;  // key -> path

  // Records a resource key; a second use is an error naming the first.
  auto claim = [&](std::map<std::string, std::string, std::less<>>& keys, const std::string& key,
                   const At& at) -> Result<void> {
    auto [it, inserted] = keys.emplace(key, at.path);
    if (!inserted) return fail(at, fmt::format("\"{}\" is already defined by {}", key, it->second));
    return ok();
  };
  auto checked = [&](const auto& resource, const At& at) -> Result<void> {
    if (auto inv = check(resource)) {
      return make_error(inv->kind, fmt::format("{}:{}: {}: {}: {}", source_, at.line, at.path, inv->field, inv->reason));
    }
    return ok();
  };

  const At top{root, "", line_of(root, 1)};
  if (!root.IsMap() && !root.IsNull()) {
    return fail(top, fmt::format("expected a map with workloads, services and policies, got {}", kind_of(root)));
  }
  AMBIENT_TRY(fields(top, kTopFields, {}, [&](std::string_view key, const At& v) -> Result<void> {
    if (key == "workloads") {
      return list(v, [&](const At& e, std::size_t) -> Result<void> {
        istio::workload::Address addr;
        AMBIENT_TRY(workload(e, addr.mutable_workload()));
        AMBIENT_TRY(claim(workload_keys, addr.workload().uid(), e));
        AMBIENT_TRY(checked(addr.workload(), e));
        out.addresses.push_back(std::move(addr));
        return ok();
      });
    }
    if (key == "services") {
      return list(v, [&](const At& e, std::size_t) -> Result<void> {
        istio::workload::Address addr;
        AMBIENT_TRY(service(e, addr.mutable_service()));
        AMBIENT_TRY(claim(service_keys, service_key(addr.service()), e));
        AMBIENT_TRY(checked(addr.service(), e));
        services.push_back(std::move(addr));
        return ok();
      });
    }
    return list(v, [&](const At& e, std::size_t) -> Result<void> {
      sec::Authorization a;
      AMBIENT_TRY(policy(e, &a));
      AMBIENT_TRY(claim(policy_keys, policy_key(a), e));
      AMBIENT_TRY(checked(a, e));
      out.policies.push_back(std::move(a));
      return ok();
    });
  }));
  for (auto& s : services) out.addresses.push_back(std::move(s));
  return out;
}

}  // namespace

Result<LocalConfig> parse_local_config(std::string_view yaml, std::string_view source_name) {
  // Bounded load (aliases, nesting: yaml_walker.h); yaml-cpp reports errors by exception, none escapes.
  auto root = yaml::load_document(yaml, source_name);
  if (!root) return std::move(root).error();
  try {
    return Parser(source_name).parse(*root);
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() ? 1 : e.mark.line + 1;
    return make_error(ErrorKind::Parse, fmt::format("{}:{}: invalid YAML: {}", source_name, line, e.msg));
  } catch (const std::exception& e) {
    return make_error(ErrorKind::Internal, fmt::format("{}: {}", source_name, e.what()));
  }
}

Result<LocalConfig> load_local_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return make_error(err == ENOENT ? ErrorKind::NotFound : ErrorKind::Io,
                      fmt::format("{}: cannot open: {}", path, std::strerror(err)), err);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return make_error(ErrorKind::Io, fmt::format("{}: read failed", path));
  return parse_local_config(text.str(), path);
}

Result<void> apply_local_config(const LocalConfig& config, SnapshotBuilder& builder) {
  // Validate everything first so that a failure leaves the builder as it was.
  for (const auto& a : config.addresses) {
    if (a.has_workload()) AMBIENT_TRY(validate(a.workload()));
    else if (a.has_service()) AMBIENT_TRY(validate(a.service()));
    else return make_error(ErrorKind::InvalidArgument, "address: neither workload nor service is set");
  }
  for (const auto& p : config.policies) AMBIENT_TRY(validate(p));
  builder.clear();
  for (const auto& a : config.addresses) AMBIENT_TRY(builder.upsert(a));
  for (const auto& p : config.policies) AMBIENT_TRY(builder.upsert(p));
  return ok();
}

}  // namespace ambient::state
