#pragma once
// Where the Kubernetes API server is and how the node agent authenticates to it.
//
// In a pod (the node agent's DaemonSet), client-go's in-cluster rules apply:
//   host  KUBERNETES_SERVICE_HOST (an IP; IPv6 without brackets), port KUBERNETES_SERVICE_PORT,
//   token /var/run/secrets/kubernetes.io/serviceaccount/token (a projected token: it rotates, so it is
//         re-read for every new connection, never cached for the process' life),
//   roots /var/run/secrets/kubernetes.io/serviceaccount/ca.crt.
// A URL override ("https://host:port", e.g. a flag for running outside a cluster) wins over the variables.
// Only https: the token is a credential.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace ambient::cni::kube {

inline constexpr std::string_view kServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token";
inline constexpr std::string_view kServiceAccountCaFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
// A token file larger than this is refused (service account JWTs are ~1 KiB).
inline constexpr std::size_t kMaxTokenBytes = 64 * 1024;

struct ApiServerConfig {
  std::string host;          // IP literal (IPv6 without brackets) or DNS name
  std::uint16_t port = 443;
  std::string ca_file;       // PEM roots the server certificate must chain to (required)
  std::string token_file;    // bearer token, re-read for every new connection; empty = no Authorization header
  std::string server_name;   // name or IP verified in the server certificate (and sent as SNI when a name);
                             // empty = host

  // "host:port", "[v6]:port": for the Host header and for errors.
  std::string authority() const;
  // The name the server certificate must carry: server_name, else host.
  const std::string& verified_name() const { return server_name.empty() ? host : server_name; }
};

// Looks up an environment variable (nullopt when unset). The default reads the process environment.
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;
std::optional<std::string> process_env(std::string_view name);

// The in-cluster configuration. `url_override` ("https://host[:port]") wins over KUBERNETES_SERVICE_HOST/
// _PORT when non-empty; empty `token_file` / `ca_file` mean the service account's files. Both files must
// exist (InvalidArgument naming the file, or the variable that is missing: "KUBERNETES_SERVICE_HOST is not
// set: not running in a pod? pass the API server URL").
Result<ApiServerConfig> in_cluster_config(std::string_view url_override, std::string_view token_file,
                                          std::string_view ca_file, const EnvLookup& env = process_env);

// "https://host", "https://host:port", "https://[v6]:port" (a trailing "/" allowed; no path, no userinfo).
Result<ApiServerConfig> parse_api_server_url(std::string_view url);

// The bearer token in `path`, surrounding whitespace trimmed. Errors name the file: NotFound when absent,
// InvalidArgument when empty, larger than kMaxTokenBytes, or holding bytes a header cannot carry.
Result<std::string> read_token_file(const std::string& path);

}  // namespace ambient::cni::kube
