// fuzz_cni_plugin: the CNI plugin's parsing without I/O (cni/plugin/cni_protocol.h), on what the container
// runtime hands it: the network configuration on stdin and the CNI_ARGS environment variable. Every
// parser runs on the whole input (stdin and CNI_ARGS are each an arbitrary byte string):
//   parse_network_config, peek_cni_version, prev_result_addresses (on an accepted prevResult),
//   parse_cni_args; and the replies built from what they return (add_result, error_reply, version_reply).
//
// Invariants:
//  - errors carry their CNI code (1, 6 or 7 for the configuration, 7 for prevResult, 4 for CNI_ARGS)
//    and a context;
//  - an accepted configuration has a supported cniVersion, which peek_cni_version finds too, and an
//    absolute agent_socket;
//  - what the plugin prints is JSON: add_result, version_reply, and error_reply of each error (the
//    runtime parses it; CNI requires UTF-8 JSON);
//  - an accepted CNI_ARGS has non-empty keys without '=' or ';' and values without ';', and joined back
//    parses to the same map.
#include <algorithm>
#include <cstdint>
#include <string>

#include "cni/api/json_fields.h"
#include "cni/plugin/cni_protocol.h"
#include "test/fuzz/fuzz_support.h"

namespace {

using namespace ambient;
using namespace ambient::cni;
using namespace ambient::cni::plugin;

void check_cni_error(const Error& e, std::initializer_list<int> codes, std::string_view cni_version) {
  fuzz::check_error(e, {ErrorKind::Parse, ErrorKind::InvalidArgument});
  FUZZ_CHECK(std::find(codes.begin(), codes.end(), e.code) != codes.end(), "CNI code {} for: {}", e.code, e.context);
  const std::string reply = error_reply(cni_version, e.code, "invalid network configuration", e.context);
  auto doc = parse_json(reply, "error reply");
  FUZZ_CHECK(doc.has_value(), "error_reply is not JSON ({}): {}", doc ? "" : doc.error().context, reply);
}

void fuzz_network_config(std::string_view text) {
  const std::string peeked = peek_cni_version(text);
  auto doc = parse_json(version_reply(peeked), "version reply");
  FUZZ_CHECK(doc.has_value(), "version_reply is not JSON: {}", doc ? "" : doc.error().context);

  auto config = parse_network_config(text);
  if (!config) {
    return check_cni_error(config.error(), {kCniIncompatibleVersion, kCniDecodingFailure, kCniInvalidConfig}, peeked);
  }
  FUZZ_CHECK(is_supported_version(config->cni_version), "accepted cniVersion {}", config->cni_version);
  FUZZ_CHECK(peeked == config->cni_version, "peek_cni_version '{}' != cniVersion '{}'", peeked, config->cni_version);
  FUZZ_CHECK(!config->agent_socket.empty() && config->agent_socket.front() == '/', "agent_socket '{}'",
             config->agent_socket);

  auto result = parse_json(add_result(*config), "add result");
  FUZZ_CHECK(result.has_value() && result->is_object(), "add_result is not a JSON object");
  const auto* version = result->as_object().if_contains("cniVersion");
  FUZZ_CHECK(version != nullptr, "add_result without cniVersion");

  if (config->prev_result) {
    auto addresses = prev_result_addresses(*config->prev_result);
    if (!addresses) check_cni_error(addresses.error(), {kCniInvalidConfig}, config->cni_version);
  }
}

void fuzz_cni_args(std::string_view text) {
  auto args = parse_cni_args(text);
  if (!args) {
    fuzz::check_error(args.error(), {ErrorKind::InvalidArgument});
    FUZZ_CHECK(args.error().code == kCniInvalidEnvironment, "CNI_ARGS error code {}", args.error().code);
    return;
  }
  std::string joined;
  for (const auto& [key, value] : *args) {
    FUZZ_CHECK(!key.empty() && key.find_first_of("=;") == std::string::npos, "CNI_ARGS key '{}'", key);
    FUZZ_CHECK(value.find(';') == std::string::npos, "CNI_ARGS value '{}'", value);
    joined += key + "=" + value + ";";
  }
  auto again = parse_cni_args(joined);
  FUZZ_CHECK(again.has_value() && *again == *args, "CNI_ARGS round trip changed '{}'", joined);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::write_seeds_if_asked({
      // A chained plugin's ADD configuration as containerd hands it over (conflist entry + prevResult).
      {"add_config", R"({
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "type": "ambient-cni",
  "agent_socket": "/var/run/ambient-cni/agent.sock",
  "service_account": "web",
  "exclude_namespaces": ["kube-system", "istio-system"],
  "plugin_log_level": "debug",
  "runtimeConfig": {"portMappings": []},
  "prevResult": {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:00:05", "sandbox": "/var/run/netns/cni-1234"}],
    "ips": [{"interface": 0, "address": "10.244.0.5/24", "gateway": "10.244.0.1"},
            {"interface": 0, "address": "fd00:10:244::5/64"}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {}
  }
})"},
      {"minimal_config", R"({"cniVersion":"0.3.1","name":"net","type":"ambient-cni"})"},
      {"cni_args", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"
                   "K8S_POD_INFRA_CONTAINER_ID=0123abcd;K8S_POD_UID=5f0c1b2e-8a1d-4c3e-9f00-123456789abc"},
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::as_text(data, size);
  fuzz_network_config(text);
  fuzz_cni_args(text);
  return 0;
}
