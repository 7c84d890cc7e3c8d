#pragma once
// The CNI side of the plugin without I/O: the network configuration on stdin, CNI_ARGS, and the JSON
// the plugin prints (version, result, error). main.cpp does the reading, posting and printing.
//
// CNI spec (github.com/containernetworking/cni SPEC.md) facts used here:
//  - Error codes: 1 incompatible CNI version, 4 invalid necessary environment variables, 6 failed to
//    decode content, 7 invalid network configuration, 11 try again later, 50 plugin not available
//    (STATUS); 100+ are plugin-specific and libcni's ErrInternal is 999.
//  - An error is printed to stdout as {"cniVersion","code","msg","details"} with a non-zero exit.
//  - A chained plugin gets the previous plugin's result as prevResult and must output a result; we
//    output prevResult unchanged (plus cniVersion when it lacks one).
// Errors returned here carry the CNI code in Error::code.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "cni/api/paths.h"
#include "common/base/result.h"

namespace ambient::cni::plugin {

// CNI error codes (a comment each: when we use it).
enum CniCode : int {
  kCniIncompatibleVersion = 1,  // cniVersion is not one of kSupportedVersions
  kCniInvalidEnvironment = 4,   // CNI_COMMAND unknown or missing, CNI_NETNS etc. missing, CNI_ARGS malformed
  kCniDecodingFailure = 6,      // stdin is not JSON (or larger than kMaxStdinBytes)
  kCniInvalidConfig = 7,        // a config field is missing or of the wrong type; prevResult absent or malformed
  kCniTryAgainLater = 11,       // the agent is unreachable, timed out or failed (5xx): transient
  kCniNotAvailable = 50,        // STATUS: the agent's socket is absent
  kCniAgentRefused = 999,       // the agent refused the pod (4xx): libcni's ErrInternal, as Istio's plugin
};

inline constexpr std::size_t kMaxStdinBytes = 1024 * 1024;
inline constexpr std::string_view kDefaultCniVersion = "1.0.0";
inline constexpr std::string_view kSupportedVersions[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};

// The network configuration (our plugin's entry of the conflist, as the runtime hands it over).
struct NetworkConfig {
  std::string cni_version;  // "1.0.0"
  std::string name;         // the network's name
  std::string type;         // "ambient-cni"
  std::optional<boost::json::object> prev_result;       // the previous plugin's result (ADD, CHECK)
  std::string agent_socket = std::string(kDefaultAgentSocketPath);  // "agent_socket"
  std::string service_account;                          // "service_account": sent as ServiceAccount
  std::vector<std::string> exclude_namespaces;          // "exclude_namespaces": ADD passes these through
  std::string log_level = "info";                       // "plugin_log_level"
};

bool is_supported_version(std::string_view version);

// Parses stdin. Codes: 6 not JSON, 7 a field of the wrong type or cniVersion missing, 1 unsupported
// cniVersion. Unknown keys are ignored (the runtime adds its own: runtimeConfig, args, ...).
Result<NetworkConfig> parse_network_config(std::string_view text);

// The cniVersion in `text` when it is a JSON object holding a string one; "" otherwise (for
// VERSION and for error replies before the config parsed).
std::string peek_cni_version(std::string_view text);

// CNI_ARGS "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0;K8S_POD_UID=..." -> map.
// Code 4 for a pair without '=' or an empty key. Empty input -> empty map.
Result<std::map<std::string, std::string, std::less<>>> parse_cni_args(std::string_view text);

// prevResult.ips[].address ("10.0.0.5/24"); code 7 when ips or an address is malformed.
Result<std::vector<std::string>> prev_result_addresses(const boost::json::object& prev_result);

// {"cniVersion":"<version or 1.0.0>","supportedVersions":[...]}
std::string version_reply(std::string_view cni_version);
// {"cniVersion":..,"code":..,"msg":..,"details":..} ("details" omitted when empty).
std::string error_reply(std::string_view cni_version, int code, std::string_view msg, std::string_view details);
// ADD's output: prevResult unchanged, with "cniVersion" added when it has none.
std::string add_result(const NetworkConfig& config);

}  // namespace ambient::cni::plugin
