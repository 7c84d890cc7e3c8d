#pragma once
// PodCgroup: a kubelet-style cgroup "kubepods/besteffort/pod<uid>" holding one process, so that a scan of the
// real /proc finds that process as the pod's (cni/agent/netns_finder.h). Root only. It uses whichever hierarchy
// this machine lets us write (cgroup v1 "pids", the v2 "unified" mount, or a pure v2 /sys/fs/cgroup) and checks
// that /proc/<pid>/cgroup really shows the path; ok() says whether that worked. On destruction the processes go
// back to the hierarchy's root and the directories are removed.
#include <sys/types.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace ambient::test {

class PodCgroup {
 public:
  PodCgroup(const std::string& uid, pid_t pid) {
    namespace fs = std::filesystem;
    for (const std::string root : {"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
      const fs::path dir = fs::path(root) / "kubepods" / "besteffort" / ("pod" + uid);
      std::error_code ec;
      if (!fs::exists(fs::path(root) / "cgroup.procs", ec)) continue;
      fs::create_directories(dir, ec);
      if (ec) continue;
      std::ofstream(dir / "cgroup.procs") << pid;
      std::ifstream check("/proc/" + std::to_string(pid) + "/cgroup");
      const std::string text((std::istreambuf_iterator<char>(check)), std::istreambuf_iterator<char>());
      if (text.find("pod" + uid) != std::string::npos) {
        dir_ = dir;
        return;
      }
      remove(dir);
    }
  }
  ~PodCgroup() {
    if (!dir_.empty()) remove(dir_);
  }
  PodCgroup(const PodCgroup&) = delete;
  PodCgroup& operator=(const PodCgroup&) = delete;

  bool ok() const { return !dir_.empty(); }

 private:
  static void remove(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    const fs::path root = dir.parent_path().parent_path().parent_path();
    std::ifstream procs(dir / "cgroup.procs");
    for (std::string pid; std::getline(procs, pid);) std::ofstream(root / "cgroup.procs") << pid;
    std::error_code ec;
    for (fs::path d = dir; d != root; d = d.parent_path()) fs::remove(d, ec);
  }
  std::filesystem::path dir_;
};

}  // namespace ambient::test
