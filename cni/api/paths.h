#pragma once
// Default locations of the node agent's files on the host. /var/run is a tmpfs: the state lives as
// long as the node's boot, like the pods' network namespaces it describes.
#include <string_view>

namespace ambient::cni {

inline constexpr std::string_view kDefaultStateDir = "/var/run/ambient-cni";
// The agent's API socket (ApiServer), dialled by the CNI plugin and the CLI (ApiClient).
inline constexpr std::string_view kDefaultAgentSocketPath = "/var/run/ambient-cni/agent.sock";
// The agent's record of enrolled pods (PodStore).
inline constexpr std::string_view kDefaultPodStorePath = "/var/run/ambient-cni/pods.json";

}  // namespace ambient::cni
