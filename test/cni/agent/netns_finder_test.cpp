// NetnsFinder: a running pod's netns from /proc cgroups (the kubelet's cgroup layouts as a table), on a
// fixture /proc tree, and on the real /proc with a process in a real netns and a real kubepods cgroup (root).
#include "cni/agent/netns_finder.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "test/common/net/net_test_support.h"
#include "test/support/child_process.h"
#include "test/support/pod_cgroup.h"
#include "test/support/temp_dir.h"

using namespace ambient;
using namespace ambient::cni;

namespace {

namespace fs = std::filesystem;

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

}  // namespace

TEST_SUITE("cni/agent/netns_finder") {
  TEST_CASE("pod UIDs in /proc/<pid>/cgroup, every kubelet layout") {
    struct Row {
      const char* cgroup;
      const char* uid;  // nullptr = none
    };
    const Row rows[] = {
        {"0::/kubepods/burstable/pod8dbc1f65-8b5e-4dd4-a0c1-8a2b4cd1e0f3/3c1d0e6f\n", "8dbc1f65-8b5e-4dd4-a0c1-8a2b4cd1e0f3"},
        {"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod8dbc1f65_8b5e_4dd4_a0c1_8a2b4cd1e0f3.slice/cri-containerd-3c1d.scope\n",
         "8dbc1f65-8b5e-4dd4-a0c1-8a2b4cd1e0f3"},
        {"0::/kubepods.slice/kubepods-pod8DBC1F65_8B5E_4DD4_A0C1_8A2B4CD1E0F3.slice/crio-3c1d.scope\n", "8dbc1f65-8b5e-4dd4-a0c1-8a2b4cd1e0f3"},
        {"12:memory:/\n11:pids:/kubepods/besteffort/pod8dbc1f65-8b5e-4dd4-a0c1-8a2b4cd1e0f3/abc\n0::/\n", "8dbc1f65-8b5e-4dd4-a0c1-8a2b4cd1e0f3"},
        {"0::/system.slice/containerd.service\n", nullptr},
        {"0::/\n", nullptr},
        {"0::/kubepods/burstable/podnot-a-uid/abc\n", nullptr},
        {"0::/kubepods/burstable/pod8dbc1f65-8b5e-4dd4-a0c1-8a2b4cd1e0f3aa/abc\n", nullptr},  // longer than a UUID
        {"0::/user.slice/pod8dbc1f65-8b5e-4dd4-a0c1-8a2b4cd1e0f3/abc\n", nullptr},            // not under kubepods
        {"", nullptr},
    };
    for (const auto& row : rows) {
      CAPTURE(row.cgroup);
      const auto uid = pod_uid_in_cgroup(row.cgroup);
      if (row.uid == nullptr) {
        CHECK_FALSE(uid.has_value());
      } else {
        REQUIRE(uid.has_value());
        CHECK(*uid == row.uid);
      }
    }
  }

  TEST_CASE("scan of a fixture /proc: host netns skipped, oldest process of a pod wins") {
    test::TempDir dir("netns-finder");
    const fs::path proc = fs::path(dir.path()) / "proc";
    const std::string a = "11111111-2222-3333-4444-555555555555", b = "66666666-7777-8888-9999-000000000000";
    // Namespaces are plain files here: their (dev, inode) is what the scan compares.
    write_file(proc / "1/ns/net", "host");
    write_file(proc / "1/cgroup", "0::/\n");
    write_file(proc / "1/stat", "1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n");
    // A host-network pod's process shares the host netns: skipped.
    fs::create_directories(proc / "50/ns");
    fs::create_hard_link(proc / "1/ns/net", proc / "50/ns/net");
    write_file(proc / "50/cgroup", "0::/kubepods/besteffort/pod" + b + "/c1\n");
    write_file(proc / "50/stat", "50 (agent) S 1 50 50 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n");
    // Pod a: two processes in one netns; the older (start 100, pid 300) wins over pid 200 (start 150).
    write_file(proc / "200/ns/net", "pod-a");
    write_file(proc / "200/cgroup", "0::/kubepods/burstable/pod" + a + "/app\n");
    write_file(proc / "200/stat", "200 (my app) S 1 200 200 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 150 0 0\n");
    fs::create_directories(proc / "300/ns");
    fs::create_hard_link(proc / "200/ns/net", proc / "300/ns/net");
    write_file(proc / "300/cgroup", "0::/kubepods/burstable/pod" + a + "/pause\n");
    write_file(proc / "300/stat", "300 (pause) S 1 300 300 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n");
    write_file(proc / "self/cgroup", "0::/kubepods/burstable/pod" + a + "/x\n");  // not a pid: ignored
    write_file(proc / "400/cgroup", "0::/kubepods/burstable/pod" + a + "/gone\n");  // no ns/net: exited

    const NetnsFinder finder(proc.string());
    const auto found = finder.scan();
    REQUIRE(found.size() == 1);
    REQUIRE(found.count(a) == 1);
    CHECK(found.at(a).pid == 300);
    CHECK(found.at(a).start_time == 100);
    CHECK(found.at(a).path == (proc / "300/ns/net").string());
    auto missing = finder.find(b, {});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().context.find("no process of pod " + b) != std::string::npos);
  }

  TEST_CASE("a process in a real netns and a real kubepods cgroup is found on /proc, IP-checked" *
            doctest::skip(test::needs_root("creates a netns and a cgroup"))) {
    test::TempNetns ns;
    REQUIRE(ns.ok());
    REQUIRE(ns.exec({"ip", "addr", "add", "10.77.0.5/32", "dev", "lo"}) == 0);
    test::TempDir logs("netns-finder");
    test::ChildProcess sleeper({"ip", "netns", "exec", ns.name(), "sleep", "60"}, logs.path() + "/sleep.log");
    REQUIRE(sleeper.pid() > 0);
    char uid[37];
    std::snprintf(uid, sizeof uid, "%08x-1234-4abc-8def-%012x", static_cast<unsigned>(getpid()), 0xabcdefu);
    test::PodCgroup cgroup(uid, sleeper.pid());
    REQUIRE_MESSAGE(cgroup.ok(), "no writable cgroup hierarchy with cgroup.procs under /sys/fs/cgroup");
    // `ip netns exec` enters the netns before exec: wait until the process is in it.
    const auto want = net::netns_id(ns.path());
    REQUIRE(want);
    bool entered = false;
    for (int i = 0; i < 200 && !entered; ++i) {
      auto id = net::netns_id("/proc/" + std::to_string(sleeper.pid()) + "/ns/net");
      entered = id && *id == *want;
      if (!entered) ::usleep(10'000);
    }
    REQUIRE(entered);

    const NetnsFinder finder("/proc");
    auto found = finder.find(uid, {"10.77.0.5"});
    REQUIRE_MESSAGE(found, (found ? "" : found.error().context));
    CHECK(found->first.pid == sleeper.pid());
    CHECK(found->first.id == *want);
    CHECK(net::netns_id(found->second.get()).value() == *want);

    // The ownership check: a pod whose IPs are not in that netns is not paired with it.
    auto wrong = finder.find(uid, {"10.77.0.6"});
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error().context.find("has none of its IPs (10.77.0.6)") != std::string::npos);
  }
}
