#pragma once
// PodNetwork: a simulated cluster network for in-pod tests and benchmarks (root). A "fabric" netns holds a
// bridge; every pod is a netns with lo up and a veth `eth0` whose peer is enslaved to the bridge, with its
// address in 10.<net>.0.0/16. Node boundaries are logical: which ztunnel and node agent a pod belongs to is up
// to the test. Everything is deleted on destruction.
#include <unistd.h>

#include <map>
#include <memory>
#include <string>

#include "test/common/net/net_test_support.h"

namespace ambient::test {

class PodNetwork {
 public:
  struct Pod {
    std::unique_ptr<TempNetns> netns;
    std::string ip;
    std::string path() const { return netns->path(); }
    std::string name() const { return netns->name(); }
  };

  PodNetwork() {
    ok_ = fabric_.ok() && fabric_.exec({"ip", "link", "add", "br0", "type", "bridge"}) == 0 &&
          fabric_.exec({"ip", "link", "set", "br0", "up"}) == 0;
  }
  bool ok() const { return ok_; }

  // A pod netns with `ip`/16 on eth0, attached to the bridge. False on any failure.
  bool add_pod(const std::string& name, const std::string& ip) {
    auto ns = std::make_unique<TempNetns>();
    if (!ns->ok()) return false;
    const std::string peer = "vp" + std::to_string(getpid() % 10000) + "x" + std::to_string(next_++);
    const bool done =
        run_command({"ip", "link", "add", "eth0", "netns", ns->name(), "type", "veth", "peer", "name", peer, "netns", fabric_.name()}) == 0 &&
        fabric_.exec({"ip", "link", "set", peer, "master", "br0"}) == 0 && fabric_.exec({"ip", "link", "set", peer, "up"}) == 0 &&
        ns->exec({"ip", "addr", "add", ip + "/16", "dev", "eth0"}) == 0 && ns->exec({"ip", "link", "set", "eth0", "up"}) == 0;
    if (!done) return false;
    pods_[name] = Pod{std::move(ns), ip};
    return true;
  }
  const Pod& pod(const std::string& name) const { return pods_.at(name); }
  std::size_t size() const { return pods_.size(); }

 private:
  TempNetns fabric_;
  std::map<std::string, Pod> pods_;
  int next_ = 0;
  bool ok_ = false;
};

}  // namespace ambient::test
