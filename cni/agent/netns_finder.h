#pragma once
// NetnsFinder: the network namespace of a pod that is already running, found without the CNI (Istio's
// cni/pkg/nodeagent/podcgroupns_linux.go): for a pod the Kubernetes watch reports, the node agent has no netns
// path, so it scans /proc (the host's, mounted at <HOST_MOUNTS_PATH>/proc in the agent's pod):
//  1. for each <proc>/<pid>: stat ns/net; skip the host's netns (<proc>/1/ns/net) and netns already seen;
//  2. read <proc>/<pid>/cgroup and look for the pod UID in its cgroup paths (pod_uid_in_cgroup);
//  3. several processes of one pod: the oldest (smallest start time, <proc>/<pid>/stat field 22) wins;
//  4. the caller then checks ownership: the netns must hold one of the pod's IPs (netns_has_any_ip), so a
//     reused UID-looking path can never pair a pod with another pod's netns.
// The netns is returned as the path <proc>/<pid>/ns/net plus an open fd (the fd keeps the netns alive even if
// that process exits; the path is what the agent records).
// Bounds: at most kMaxScannedPids pids per scan and 64 KiB per cgroup file (the rest is ignored).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/net/fd.h"
#include "common/net/netns.h"

namespace ambient::cni {

inline constexpr std::size_t kMaxScannedPids = 1 << 20;

// The pod UID named by a /proc/<pid>/cgroup text, in any of the kubelet's layouts:
//   cgroupfs:  "0::/kubepods/burstable/pod8dbc1f65-8b5e-4dd4-a0c1-8a2b4cd1e0f3/<container id>"
//   systemd:   "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod8dbc1f65_8b5e_..._e0f3.slice/cri-containerd-<id>.scope"
//   (cgroup v1 lines "12:memory:/kubepods/..." too). nullopt when no line names a pod.
std::optional<std::string> pod_uid_in_cgroup(std::string_view cgroup_text);

struct PodNetns {
  std::string path;        // <proc>/<pid>/ns/net
  net::NetnsId id;
  int pid = 0;
  std::uint64_t start_time = 0;  // clock ticks after boot
};

class NetnsFinder {
 public:
  explicit NetnsFinder(std::string proc_dir);

  // One pass over proc: every pod UID found -> its netns (oldest process).
  std::map<std::string, PodNetns> scan() const;
  // The netns of pod `uid` that holds one of `ips` (none given: the first match). NotFound with what was seen
  // ("no process of pod <uid> under /host/proc", "netns of pod <uid> (pid 42) has none of 10.0.0.5").
  Result<std::pair<PodNetns, net::UniqueFd>> find(std::string_view uid, const std::vector<std::string>& ips) const;
  // The same on the result of an earlier scan() (one scan can serve many pods).
  Result<std::pair<PodNetns, net::UniqueFd>> open(const std::map<std::string, PodNetns>& scanned, std::string_view uid,
                                                  const std::vector<std::string>& ips) const;

  const std::string& proc_dir() const { return proc_dir_; }

 private:
  std::string proc_dir_;
};

// Whether the netns behind `netns_fd` has one of `ips` on an interface (getifaddrs inside it). Needs
// CAP_SYS_ADMIN; synchronous.
Result<bool> netns_has_any_ip(int netns_fd, const std::vector<std::string>& ips);

}  // namespace ambient::cni
