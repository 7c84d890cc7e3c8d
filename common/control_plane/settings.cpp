#include "common/control_plane/settings.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/base/json.h"
#include "common/grpc/target.h"
#include "common/identity/istio_ca_client.h"
#include "common/identity/local_ca_source.h"
#include "common/tls/ca.h"

namespace ambient::control_plane {

void add_options(config::Options& o) {
  o.add({"xds-address", "XDS_ADDRESS", "", "istiod Delta ADS address https://host:port (exclusive with LOCAL_XDS_PATH)"})
      .add({"xds-root-ca", "XDS_ROOT_CA", "/var/run/secrets/istio/root-cert.pem", "roots istiod's certificate must chain to (file or PEM)"})
      .add({"alt-xds-hostname", "ALT_XDS_HOSTNAME", "", "name to verify in istiod's certificate instead of the address's host"})
      .add({"auth-token", "AUTH_TOKEN", "", "file with the bearer token sent to istiod (re-read per connection)"})
      .add({"instance-ip", "INSTANCE_IP", "", "this proxy's IP (xDS node id)"})
      .add({"pod-name", "POD_NAME", "", "this proxy's pod name (xDS node id)"})
      .add({"pod-namespace", "POD_NAMESPACE", "", "this proxy's namespace (xDS node id)"})
      .add({"cluster-id", "CLUSTER_ID", "Kubernetes", "the local cluster id"})
      .add({"node-name", "NODE_NAME", "", "this node's name"})
      .add({"ca-address", "CA_ADDRESS", "", "istiod CA address https://host:port; empty = the built-in CA"})
      .add({"ca-root-ca", "CA_ROOT_CA", "/var/run/secrets/istio/root-cert.pem", "roots the CA's certificate must chain to (file or PEM)"})
      .add({"alt-ca-hostname", "ALT_CA_HOSTNAME", "", "name to verify in the CA's certificate instead of the address's host"});
}

Settings from_options(const config::Options& o) {
  Settings s;
  s.xds_address = o.get("xds-address");
  s.xds_root_ca = o.get("xds-root-ca");
  s.alt_xds_hostname = o.get("alt-xds-hostname");
  s.auth_token_path = o.get("auth-token");
  s.instance_ip = o.get("instance-ip");
  s.pod_name = o.get("pod-name");
  s.pod_namespace = o.get("pod-namespace");
  s.cluster_id = o.get("cluster-id");
  s.node_name = o.get("node-name");
  s.ca_address = o.get("ca-address");
  s.ca_root_ca = o.get("ca-root-ca");
  s.alt_ca_hostname = o.get("alt-ca-hostname");
  // XDS_HEADER_<NAME>=value and CA_HEADER_<NAME>=value: extra gRPC metadata, names lower-cased;
  // ISTIO_META_<KEY>=value: xDS node metadata.
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view kv(*e);
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    // ISTIO_META_<KEY>=value: node metadata KEY (prefix stripped), as Istio's proxy metadata.
    if (constexpr std::string_view kMeta = "ISTIO_META_"; kv.starts_with(kMeta) && eq > kMeta.size())
      s.proxy_metadata.emplace_back(std::string(kv.substr(kMeta.size(), eq - kMeta.size())), std::string(kv.substr(eq + 1)));
    for (auto [prefix, out] : {std::pair{std::string_view("XDS_HEADER_"), &s.xds_headers},
                               std::pair{std::string_view("CA_HEADER_"), &s.ca_headers}}) {
      if (!kv.starts_with(prefix) || eq <= prefix.size()) continue;
      std::string name(kv.substr(prefix.size(), eq - prefix.size()));
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      out->emplace_back(std::move(name), std::string(kv.substr(eq + 1)));
    }
  }
  return s;
}

bool running_in_kubernetes() {
  const auto host = config::env("KUBERNETES_SERVICE_HOST");
  return host && !host->empty();
}

bool apply_environment_defaults(Settings& s, const config::Options& o, bool local_state, bool local_ca) {
  if (o.source("cluster-id") == "default")
    if (auto id = config::env("ISTIO_META_CLUSTER_ID"); id && !id->empty()) s.cluster_id = *id;
  if (!running_in_kubernetes()) return false;
  if (o.source("xds-address") == "default" && !local_state) s.xds_address = kIstiodAddress;
  if (o.source("ca-address") == "default" && !local_ca) s.ca_address = kIstiodAddress;
  if (o.source("auth-token") == "default") s.auth_token_path = kIstioTokenPath;
  return true;
}

Result<void> check_state_source(const Settings& s, const std::string& local_config_path) {
  if (!local_config_path.empty() && !s.xds_address.empty())
    return errorf(ErrorKind::InvalidArgument,
                  "LOCAL_XDS_PATH ({}) and XDS_ADDRESS ({}) are exclusive: state comes from one source; unset one "
                  "(XDS_ADDRESS=\"\" disables xDS)",
                  local_config_path, s.xds_address);
  return ok();
}

Result<void> check_ca_source(const Settings& s, const std::string& cacerts_dir) {
  if (!s.ca_address.empty() && !cacerts_dir.empty())
    return errorf(ErrorKind::InvalidArgument,
                  "CA_ADDRESS ({}) and CA_CERTS_DIR ({}) are exclusive: certificates come from istiod's CA or the built-in one",
                  s.ca_address, cacerts_dir);
  return ok();
}

envoy::config::core::v3::Node make_node(const Settings& s, std::string_view type) {
  envoy::config::core::v3::Node node;
  const std::string ip = s.instance_ip.empty() ? "1.1.1.1" : s.instance_ip;
  node.set_id(fmt::format("{}~{}~{}.{}~{}.svc.cluster.local", type, ip, s.pod_name, s.pod_namespace, s.pod_namespace));
  auto& md = *node.mutable_metadata()->mutable_fields();
  md["NAME"].set_string_value(s.pod_name);
  md["NAMESPACE"].set_string_value(s.pod_namespace);
  md["INSTANCE_IPS"].set_string_value(s.instance_ip);
  md["NODE_NAME"].set_string_value(s.node_name);
  md["CLUSTER_ID"].set_string_value(s.cluster_id);
  for (const auto& [key, value] : s.proxy_metadata) md[key].set_string_value(value);
  return node;
}

Result<std::shared_ptr<const grpc::ChannelTls>> channel_tls(std::string_view setting, const std::string& value) {
  std::string roots = value;
  const bool inline_pem = value.starts_with("-----BEGIN");
  if (!inline_pem) {
    std::ifstream in(value);
    if (!in) return errorf(ErrorKind::NotFound, "{} {}: cannot be read (a PEM file, or the PEM itself)", setting, value);
    std::stringstream ss;
    ss << in.rdbuf();
    roots = ss.str();
  }
  grpc::ChannelTlsOptions tls_options;
  tls_options.roots_pem = roots;
  auto tls = grpc::ChannelTls::create(tls_options);
  if (!tls) return errorf(tls.error().kind, "{} {}: {}", setting, inline_pem ? "(inline PEM)" : value, tls.error().context);
  return std::make_shared<const grpc::ChannelTls>(std::move(*tls));
}

Result<xds::AdsOptions> ads_options(const Settings& s, std::string_view type, std::vector<std::string> type_urls) {
  auto opts = xds::parse_xds_address(s.xds_address);
  if (!opts) return std::move(opts).error();
  auto tls = channel_tls("XDS_ROOT_CA", s.xds_root_ca);
  if (!tls) return std::move(tls).error();
  opts->tls = std::move(*tls);
  opts->server_name = s.alt_xds_hostname;
  opts->token_path = s.auth_token_path;
  opts->cluster_id = s.cluster_id;
  for (const auto& [name, value] : s.xds_headers) opts->headers.push_back({name, value});
  opts->node = make_node(s, type);
  opts->type_urls = std::move(type_urls);
  return opts;
}

Result<identity::CertificateSourcePtr> make_certificate_source(boost::asio::any_io_executor ex, const Settings& s,
                                                               const std::string& trust_domain,
                                                               const std::string& cacerts_dir, bool impersonate) {
  if (!s.ca_address.empty()) {
    auto target = grpc::parse_target(s.ca_address, "CA_ADDRESS");
    if (!target) return std::move(target).error();
    auto tls = channel_tls("CA_ROOT_CA", s.ca_root_ca);
    if (!tls) return std::move(tls).error();
    identity::IstioCaOptions o;
    o.host = target->host;
    o.port = target->port;
    o.server_name = s.alt_ca_hostname;
    o.tls = std::move(*tls);
    o.token_path = s.auth_token_path;
    o.cluster_id = s.cluster_id;
    for (const auto& [name, value] : s.ca_headers) o.headers.push_back({name, value});
    o.impersonate = impersonate;
    spdlog::info("identity: certificates from istiod's CA at {}:{}", o.host, o.port);
    return identity::CertificateSourcePtr(std::make_shared<identity::IstioCaClient>(ex, std::move(o)));
  }
  Result<tls::CertificateAuthority> ca = cacerts_dir.empty()
                                             ? tls::CertificateAuthority::create_self_signed(trust_domain, std::chrono::hours(24 * 365))
                                             : tls::CertificateAuthority::load_cacerts_dir(cacerts_dir);
  if (!ca) return errorf(ca.error().kind, "built-in CA{}: {}", cacerts_dir.empty() ? "" : " from " + cacerts_dir, ca.error().context);
  if (cacerts_dir.empty())
    spdlog::warn("identity: built-in CA is self-signed and private to this process: peers trust it only if they "
                 "share it (set CA_CERTS_DIR to istiod-style cacerts to interoperate)");
  return identity::CertificateSourcePtr(std::make_shared<identity::LocalCaSource>(std::move(*ca)));
}

std::string xds_status_json(const xds::AdsClient* ads, const Settings& s) {
  if (ads == nullptr) return "null";
  const auto& st = ads->stats();
  return fmt::format("{{\"address\": {}, \"connected\": {}, \"streams\": {}, \"responses\": {}, \"acks\": {}, "
                     "\"nacks\": {}, \"applied\": {}, \"removed\": {}, \"applyMicrosLast\": {}, \"applyMicrosMax\": {}, \"lastNack\": {}, \"lastError\": {}}}",
                     json::quote(s.xds_address), st.connected ? "true" : "false", st.connects, st.responses, st.acks,
                     st.nacks, st.applied, st.removed, st.apply_us_last, st.apply_us_max, json::quote(st.last_nack), json::quote(st.last_error));
}

}  // namespace ambient::control_plane
