#pragma once
// ztunnel configuration: command-line flags and Istio ztunnel's environment variable names for the same
// meaning (reference ztunnel.md 8.1); flag > env > default. load_config() validates everything and names
// the flag or variable in each error.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"
#include "common/control_plane/settings.h"
#include "common/h2/settings.h"

namespace ambient::ztunnel {

enum class ProxyMode : std::uint8_t {
  Dedicated,  // listeners in ztunnel's own network namespace, one workload (PROXY_WORKLOAD_INFO)
  Shared,     // in-pod: listeners inside each pod's netns, pods from the node agent over ZDS (INPOD_UDS)
};

struct WorkloadInfo {
  std::string ns, name, service_account;
};

struct Config {
  // State source: the local file or istiod's Delta ADS (exclusive). Certificates: the built-in CA below, or
  // istiod's CA. The xDS and CA settings, the node (INSTANCE_IP, POD_NAME, POD_NAMESPACE, ISTIO_META_*),
  // CLUSTER_ID and NODE_NAME are shared with the waypoint (common/control_plane/settings.h).
  std::string local_config_path;  // LOCAL_XDS_PATH / --local-config
  control_plane::Settings control_plane;
  // Mode and local workload.
  ProxyMode mode = ProxyMode::Dedicated;
  WorkloadInfo workload;          // PROXY_WORKLOAD_INFO=ns/name/sa (dedicated)
  std::string network;            // NETWORK
  unsigned worker_threads = 2;    // ZTUNNEL_WORKER_THREADS (n, n%, 0 = all cores)

  // Data-plane listeners (dedicated mode: in our own netns, on this address).
  boost::asio::ip::address bind_address = boost::asio::ip::make_address("::");  // --bind
  std::uint16_t outbound_port = 15001;            // captured outbound (SO_ORIGINAL_DST)
  std::uint16_t inbound_plaintext_port = 15006;   // captured inbound without HBONE
  std::uint16_t inbound_port = 15008;             // HBONE
  std::uint16_t socks5_port = 15080;
  bool socks5_enabled = true;                     // UNSTABLE_ENABLE_SOCKS5 (on in the embedded default)
  std::uint32_t packet_mark = 0;                  // PACKET_MARK (default: 0 = none dedicated, 1337 shared)
  std::string inpod_uds = "/var/run/ztunnel/ztunnel.sock";  // INPOD_UDS: the node agent's ZDS socket (shared mode)
  bool orig_src = true;                           // ENABLE_ORIG_SRC: keep the client IP towards the app if the kernel allows

  // Control-plane-side listeners.
  boost::asio::ip::tcp::endpoint admin{boost::asio::ip::make_address("127.0.0.1"), 15000};
  boost::asio::ip::tcp::endpoint metrics{boost::asio::ip::make_address("::"), 15020};
  boost::asio::ip::tcp::endpoint readiness{boost::asio::ip::make_address("::"), 15021};

  // Identity: the built-in CA (self-signed, or istiod-style cacerts files), unless control_plane.ca_address is set.
  std::string trust_domain = "cluster.local";     // TRUST_DOMAIN
  std::chrono::seconds secret_ttl{24 * 3600};     // SECRET_TTL
  std::string cacerts_dir;                        // CA_CERTS_DIR / --cacerts: ca-cert.pem + ca-key.pem (+ chain, root)

  // HBONE pool and HTTP/2.
  std::uint32_t pool_max_streams_per_connection = 100;                 // POOL_MAX_STREAMS_PER_CONNECTION
  std::chrono::milliseconds pool_unused_release_timeout{5 * 60 * 1000};  // POOL_UNUSED_RELEASE_TIMEOUT
  h2::Settings h2;                                // HTTP2_STREAM_WINDOW_SIZE, HTTP2_CONNECTION_WINDOW_SIZE, HTTP2_FRAME_SIZE
  std::chrono::milliseconds connect_timeout{10'000};
  // Resource bounds. h2.idle_timeout (HBONE_IDLE_TIMEOUT) closes inbound HBONE connections without tunnels.
  std::uint64_t max_connections = 0;                         // MAX_CONNECTIONS; 0: half the open-file limit (net::ConnectionLimit)
  std::chrono::milliseconds hbone_handshake_timeout{10'000};  // HBONE_HANDSHAKE_TIMEOUT: TCP accept → mTLS done

  // Lifecycle and logs.
  std::chrono::milliseconds termination_deadline{5'000};  // CONNECTION_TERMINATION_DEADLINE
  std::string log_level = "info";                 // RUST_LOG-like: a level name (--log-level, LOG_LEVEL)
  bool log_json = false;                          // LOG_FORMAT=json
};

// Parses argv and the environment. `--help` sets *help_text and returns a default Config.
Result<Config> load_config(int argc, const char* const* argv, std::string* help_text = nullptr);

}  // namespace ambient::ztunnel
