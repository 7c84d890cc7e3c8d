#pragma once
// The waypoint's process configuration: command-line flags and environment variables (Istio's names where a
// meaning is shared with ztunnel); flag > env > default. load_app_config() validates everything and names the
// flag or variable in each error.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"
#include "common/control_plane/settings.h"
#include "common/h2/settings.h"

namespace ambient::waypoint {

enum class LoadBalancing : std::uint8_t { LeastRequest, RoundRobin, Random };

struct AppConfig {
  // State: workloads and services (which use this waypoint) from Istio's local-config YAML or from istiod's
  // Delta ADS (exactly one of the two); routes and policies from Kubernetes-shaped YAML files or directories,
  // re-read when they change. control_plane also holds the Istio CA settings (CA_ADDRESS: the certificate from
  // istiod's CA instead of the built-in one), shared with ztunnel (common/control_plane/settings.h).
  std::string local_config_path;            // LOCAL_XDS_PATH / --local-config
  control_plane::Settings control_plane;    // XDS_ADDRESS, ..., CA_ADDRESS (POD_NAME, POD_NAMESPACE default to the workload's)
  std::vector<std::string> route_paths;     // WAYPOINT_CONFIG_PATHS / --routes: files or directories, comma-separated
  std::chrono::milliseconds reload_interval{1000};  // how often the files are checked for changes

  // Who this waypoint is: its workload (namespace/name/serviceaccount: the identity it serves and dials with)
  // and its Gateway name (AuthorizationPolicy targetRefs kind Gateway; default the workload name).
  std::string ns, name, service_account;    // WAYPOINT_WORKLOAD_INFO / --workload-info
  std::string gateway_name;                 // WAYPOINT_GATEWAY / --gateway
  std::string network;                      // NETWORK
  unsigned worker_threads = 2;              // WAYPOINT_WORKER_THREADS

  boost::asio::ip::address bind_address = boost::asio::ip::make_address("::");  // --bind
  std::uint16_t hbone_port = 15008;
  bool hbone_enabled = true;                        // WAYPOINT_HBONE: off when only the sandwich binding is used
  bool balance_connections = true;                  // WAYPOINT_EXACT_BALANCE: HBONE connections to the least-loaded worker
  // Istio's sandwich binding (Gateway annotation ambient.istio.io/waypoint-inbound-binding: PROXY/15088): the
  // local ztunnel sends PROXY protocol v2 here. Off unless set; only loopback peers are accepted.
  std::optional<std::uint16_t> proxy_protocol_port;  // WAYPOINT_PROXY_PROTOCOL_PORT
  boost::asio::ip::address proxy_protocol_bind = boost::asio::ip::make_address("127.0.0.1");
  boost::asio::ip::tcp::endpoint admin{boost::asio::ip::make_address("127.0.0.1"), 15000};
  boost::asio::ip::tcp::endpoint metrics{boost::asio::ip::make_address("::"), 15020};
  boost::asio::ip::tcp::endpoint readiness{boost::asio::ip::make_address("::"), 15021};

  // Identity: the built-in CA (self-signed, or istiod-style cacerts files), unless control_plane.ca_address is set.
  std::string trust_domain = "cluster.local";
  std::chrono::seconds secret_ttl{24 * 3600};
  std::string cacerts_dir;

  // Upstream.
  LoadBalancing load_balancing = LoadBalancing::LeastRequest;  // WAYPOINT_LB
  std::uint32_t pool_max_streams_per_connection = 100;
  std::chrono::milliseconds pool_unused_release_timeout{5 * 60 * 1000};
  std::chrono::milliseconds connect_timeout{10'000};
  h2::Settings h2;

  // Downstream HTTP limits and timeouts.
  std::chrono::milliseconds header_read_timeout{10'000};   // from the first byte of a request to its whole head
  std::chrono::milliseconds idle_timeout{3'600'000};       // a keep-alive connection with no request
  std::chrono::milliseconds handshake_timeout{10'000};     // WAYPOINT_HANDSHAKE_TIMEOUT: mTLS of an HBONE connection
  std::uint64_t max_connections = 0;  // WAYPOINT_MAX_CONNECTIONS (HBONE + PROXY protocol); 0: half the open-file limit
  std::size_t max_header_bytes = 60 * 1024;
  std::size_t max_headers = 100;

  bool access_log = true;                          // WAYPOINT_ACCESS_LOG: one line per request (metrics either way)
  std::chrono::milliseconds termination_deadline{5'000};
  std::string log_level = "info";
  bool log_json = false;
};

Result<AppConfig> load_app_config(int argc, const char* const* argv, std::string* help_text = nullptr);

}  // namespace ambient::waypoint
