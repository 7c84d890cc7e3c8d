#pragma once
// The `cni-agent` command line: `run` (the daemon) and the CLI verbs that talk to a running agent over its
// unix-socket API (`enroll`, `unenroll`, `pods`), for machines without Kubernetes and for tests.
// Flags use Istio's environment names where the meaning is shared (flag > env > default).
#include <optional>
#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "cni/agent/kube_pod_source.h"
#include "cni/agent/node_agent.h"
#include "cni/install/install_options.h"
#include "cni/api/api_server.h"
#include "common/base/result.h"

namespace ambient::cni {

// POD_SOURCE=kubernetes: pods come from the API server's watch (KubePodSource), and the CNI plugin's ADDs
// are admitted by the same enablement decision.
struct AgentKubeConfig {
  bool enabled = false;
  kube::ApiServerConfig api;     // in-cluster (KUBERNETES_SERVICE_HOST, service-account token and CA) or KUBE_API_URL
  KubePodSourceOptions source;   // NODE_NAME, AMBIENT_ENABLEMENT_SELECTOR, EXCLUDE_NAMESPACES, SYSTEM_NAMESPACE, HOST_MOUNTS_PATH
};

struct AgentRunConfig {
  NodeAgentOptions agent;
  ApiServerOptions api;
  AgentKubeConfig kube;
  // INSTALL_CNI=true: the plugin installer runs in the agent (cni/install). On shutdown the plugin is removed only
  // when the agent's DaemonSet (CNI_DAEMONSET_NAME in POD_NAMESPACE) is gone or being deleted: during an upgrade or
  // a restart it stays, so new pods wait for the agent instead of starting outside the mesh.
  install::CniInstallOptions install;
  std::string daemonset_name = "istio-cni-node";
  std::string daemonset_namespace = "istio-system";
  // GET /readyz: 200 once ZDS is served (and, from Kubernetes, both caches synced). Default: [::]:8000 with
  // POD_SOURCE=kubernetes (Istio's istio-cni probe), none otherwise.
  std::optional<boost::asio::ip::tcp::endpoint> readiness;
  std::string log_level = "info";
};

// `cni-agent run [flags]`: argv starts at the verb. Sets *help to the usage text for --help.
Result<AgentRunConfig> parse_run_config(int argc, const char* const* argv, std::string* help);

// `cni-agent enroll|unenroll|pods [flags]`: runs the verb against the agent's socket and returns what to
// print (the agent's JSON answer). Errors name the flag or carry the agent's answer.
Result<std::string> run_cli_verb(const std::string& verb, int argc, const char* const* argv, std::string* help);

std::string top_usage();

}  // namespace ambient::cni
