#pragma once
// CmdAddRequest: the body of POST /cmdadd, the CNI plugin's ADD forwarded to the node agent. Istio's
// CNIPluginAddEvent shape (cni/pkg/nodeagent/cni-watcher.go) plus the fields only we send:
//
//   {"Netns":"/var/run/netns/cni-1234","PodName":"web-0","PodNamespace":"default",
//    "PodUID":"5f0c...","ServiceAccount":"web",
//    "IPs":[{"Interface":0,"Address":"10.0.0.5/24","Gateway":"10.0.0.1"}]}
//
// Parsing is lenient the way Go's encoding/json is: key names match case-insensitively ("address"
// as the CNI result writes it, "Address"), unknown keys are ignored, and an address may be
// "ip/prefix", "ip", or Go's net.IPNet object {"IP":"10.0.0.5","Mask":"////AA=="} (the mask is not
// needed). PodUID is required by our agent (it keys every record; Istio's looks the pod up by name
// instead); ServiceAccount is optional.
#include <string>
#include <string_view>
#include <vector>

#include "cni/api/pod.h"
#include "common/base/result.h"

namespace ambient::cni {

struct CmdAddRequest {
  std::string netns;            // CNI_NETNS
  std::string pod_name;         // K8S_POD_NAME
  std::string pod_namespace;    // K8S_POD_NAMESPACE
  std::string pod_uid;          // K8S_POD_UID; omitted from the body when empty
  std::string service_account;  // from the plugin's config; omitted when empty
  std::vector<std::string> addresses;  // prevResult.ips[].address: "10.0.0.5/24"

  friend bool operator==(const CmdAddRequest&, const CmdAddRequest&) = default;
};

// The JSON body (what the plugin sends).
std::string cmdadd_to_json(const CmdAddRequest& request);

// Parses and validates a body into the spec the agent enrolls (IPs without their prefix length).
// Errors name the wire field: "PodNamespace: missing", "IPs[1].Address: '10.0.0.300/24' is not ...".
Result<PodSpec> pod_spec_from_cmdadd(std::string_view body);

}  // namespace ambient::cni
