#pragma once
// Settings: where a proxy's state and certificates come from when istiod serves them, shared by ztunnel and the
// waypoint. State: istiod's Delta ADS (XDS_ADDRESS; exclusive with a local config file). Certificates: the Istio
// CA (CA_ADDRESS; exclusive with the built-in CA's CA_CERTS_DIR). Istio's variable names (reference ztunnel.md
// 8.1), flag > env > default:
//
//   config::Options o;
//   control_plane::add_options(o);                  // XDS_ADDRESS ... CA_ADDRESS, CA_ROOT_CA, ALT_CA_HOSTNAME
//   AMBIENT_TRY(o.parse(argc, argv));
//   auto cp = control_plane::from_options(o);       // + XDS_HEADER_*, CA_HEADER_*, ISTIO_META_* from the environment
//   ...
//   auto ads = control_plane::ads_options(cp, "waypoint", {std::string(xds::kAddressType)});
//   auto certs = control_plane::make_certificate_source(ex, cp, trust_domain, cacerts_dir, /*impersonate=*/false);
//
// The node (reference ztunnel.md 4.4): id "<type>~<INSTANCE_IP>~<POD_NAME>.<POD_NAMESPACE>~<POD_NAMESPACE>.svc.cluster.local"
// (type "ztunnel", or "waypoint" as istiod's waypoint pods run `pilot-agent proxy waypoint`) and string metadata
// NAME, NAMESPACE, INSTANCE_IPS, NODE_NAME, CLUSTER_ID plus every ISTIO_META_<KEY>.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "common/base/config.h"
#include "common/base/result.h"
#include "common/grpc/channel_tls.h"
#include "common/identity/certificate_source.h"
#include "common/xds/ads_client.h"
#include "proto/core.pb.h"

namespace ambient::control_plane {

struct Settings {
  // istiod's Delta ADS.
  std::string xds_address;        // XDS_ADDRESS: https://host:port; empty = no xDS
  std::string xds_root_ca;        // XDS_ROOT_CA: PEM file, or the PEM itself
  std::string alt_xds_hostname;   // ALT_XDS_HOSTNAME: name verified in istiod's certificate instead of the host
  std::string auth_token_path;    // AUTH_TOKEN: bearer token file (xDS and CA), re-read per connection; empty = none
  std::vector<std::pair<std::string, std::string>> xds_headers;  // XDS_HEADER_<NAME>=value -> <name>: value
  // The node.
  std::string instance_ip;        // INSTANCE_IP
  std::string pod_name;           // POD_NAME
  std::string pod_namespace;      // POD_NAMESPACE
  std::vector<std::pair<std::string, std::string>> proxy_metadata;  // ISTIO_META_<KEY>=value -> node metadata KEY
  std::string cluster_id = "Kubernetes";  // CLUSTER_ID (also the `clusterid` header of xDS and CA calls)
  std::string node_name;          // NODE_NAME
  // The Istio CA.
  std::string ca_address;         // CA_ADDRESS: https://host:port; empty = the built-in CA
  std::string ca_root_ca;         // CA_ROOT_CA: PEM file, or the PEM itself
  std::string alt_ca_hostname;    // ALT_CA_HOSTNAME: name verified in the CA's certificate instead of the host
  std::vector<std::pair<std::string, std::string>> ca_headers;  // CA_HEADER_<NAME>=value -> <name>: value
};

// Declares the flags and variables above (not LOCAL_XDS_PATH nor CA_CERTS_DIR: each proxy names its own).
void add_options(config::Options& o);
// The values of a parsed `o`, plus XDS_HEADER_*, CA_HEADER_* (names lower-cased) and ISTIO_META_* from the environment.
Settings from_options(const config::Options& o);

// Inside Kubernetes (KUBERNETES_SERVICE_HOST is set, as in every pod), what Istio's ztunnel assumes there
// (reference ztunnel.md 4.1, 8.1) for each setting left at its default: XDS_ADDRESS = istiod's
// https://istiod.istio-system.svc:15012 unless a local config file is the state source, CA_ADDRESS the same
// unless the built-in CA has cacerts files, AUTH_TOKEN = the projected istio-ca token. Everywhere:
// ISTIO_META_CLUSTER_ID (what Istio's charts set) stands in for an unset CLUSTER_ID. Returns whether the
// Kubernetes defaults applied.
inline constexpr std::string_view kIstiodAddress = "https://istiod.istio-system.svc:15012";
inline constexpr std::string_view kIstioTokenPath = "/var/run/secrets/tokens/istio-token";
bool running_in_kubernetes();
bool apply_environment_defaults(Settings& s, const config::Options& o, bool local_state, bool local_ca);

// LOCAL_XDS_PATH and XDS_ADDRESS are exclusive: an error naming both when both are set.
Result<void> check_state_source(const Settings& s, const std::string& local_config_path);
// CA_ADDRESS and CA_CERTS_DIR are exclusive: an error naming both when both are set.
Result<void> check_ca_source(const Settings& s, const std::string& cacerts_dir);

// The node a proxy of `type` ("ztunnel", "waypoint") sends on its first request.
envoy::config::core::v3::Node make_node(const Settings& s, std::string_view type);

// TLS towards the control plane, trusting `value` of root setting `setting` (XDS_ROOT_CA, CA_ROOT_CA): the
// PEM itself, or a file holding it. Errors name the setting and the file.
Result<std::shared_ptr<const grpc::ChannelTls>> channel_tls(std::string_view setting, const std::string& value);

// The Delta ADS client's options for XDS_ADDRESS (which must be set): TLS, token, headers, node of `type`,
// subscribed to `type_urls`.
Result<xds::AdsOptions> ads_options(const Settings& s, std::string_view type, std::vector<std::string> type_urls);

// The certificate source: the Istio CA when CA_ADDRESS is set (`impersonate`: ask for other workloads'
// identities, ztunnel's shared mode), else the built-in CA from `cacerts_dir` (istiod-style cacerts files), or a
// self-signed one for `trust_domain` when that is empty (logged as a warning: only this process trusts it).
Result<identity::CertificateSourcePtr> make_certificate_source(boost::asio::any_io_executor ex, const Settings& s,
                                                               const std::string& trust_domain,
                                                               const std::string& cacerts_dir, bool impersonate);

// /config_dump's "xds" object: the stream's counters and last errors; "null" without a client.
std::string xds_status_json(const xds::AdsClient* ads, const Settings& s);

}  // namespace ambient::control_plane
