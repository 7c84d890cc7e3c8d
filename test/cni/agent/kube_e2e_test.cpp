// The node agent with Kubernetes as its pod source, end to end and real: a fake API server (HTTPS, list and
// watch streams, merge patches) in this process; a `cni-agent run --pod-source=kubernetes` process and a ztunnel
// in shared mode; pods as network namespaces on a bridge, each with a process in a kubepods cgroup named after
// its UID, so the agent finds the netns of a running pod by scanning the real /proc. Labels decide: a namespace
// label enrolls its running pods without a restart (rules in their netns, traffic through HBONE with SPIFFE
// identities, annotation ambient.istio.io/redirection=enabled), a pod label opts one out again, removing the
// namespace label unenrolls the rest (netns as before, annotation removed). Faults: the watch cut and the
// history compacted (410 Gone: relist) while labels change, a malformed event, API errors, a pod whose netns
// is not there yet (pending, then enabled), no ztunnel (pending, then enabled once one connects).
// Root only: prints SKIPPED otherwise (CI runs as root).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <boost/json.hpp>

#include "common/net/netns.h"
#include "test/cni/agent/netns_state.h"
#include "test/cni/api/api_test_support.h"
#include "test/common/net/net_test_support.h"
#include "test/support/child_process.h"
#include "test/support/fake_kube_api.h"
#include "test/support/netns_echo.h"
#include "test/support/paths.h"
#include "test/support/pod_cgroup.h"
#include "test/support/pod_network.h"
#include "test/support/temp_dir.h"
#include "test/support/wait.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kNode = "node-1";
constexpr const char* kUidClient = "0a000001-0000-4000-8000-00000000c11e";
constexpr const char* kUidServer = "0a000002-0000-4000-8000-000000005e7e";
constexpr const char* kUidLate = "0a000003-0000-4000-8000-00000000147e";
constexpr const char* kUidFresh = "0a000004-0000-4000-8000-0000000f4e54";
constexpr const char* kUidPlain = "0a000005-0000-4000-8000-0000000091a1";
constexpr const char* kRedirection = "ambient.istio.io/redirection";

constexpr const char* kMesh = R"(
workloads:
- uid: Kubernetes//Pod/shop/client
  name: client
  namespace: shop
  serviceAccount: client
  workloadIps: ["10.82.1.1"]
  protocol: HBONE
  node: node-1
- uid: Kubernetes//Pod/shop/server
  name: server
  namespace: shop
  serviceAccount: server
  workloadIps: ["10.82.1.2"]
  protocol: HBONE
  node: node-1
- uid: Kubernetes//Pod/shop/fresh
  name: fresh
  namespace: shop
  serviceAccount: fresh
  workloadIps: ["10.82.1.4"]
  protocol: HBONE
  node: node-1
- uid: Kubernetes//Pod/shop/late
  name: late
  namespace: shop
  serviceAccount: late
  workloadIps: ["10.82.1.3"]
  protocol: HBONE
  node: node-1
)";

std::string pod_json(const std::string& name, const std::string& uid, const std::string& ip, const std::string& labels = "{}") {
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + name + R"(","namespace":"shop","uid":")" + uid +
         R"(","labels":)" + labels + R"(},"spec":{"nodeName":"node-1","serviceAccountName":")" + name +
         R"(","containers":[{"name":"app","image":"app"}]},"status":{"phase":"Running","podIP":")" + ip +
         R"(","podIPs":[{"ip":")" + ip + R"("}]}})";
}

// Sets a pod's labels the way `kubectl label` does: the rest of the object (the agent's annotation) is kept.
void set_pod_labels(FakeKubeApi& api, const std::string& name, const std::string& labels_json) {
  auto pod = api.object(FakeKubeApi::Resource::Pods, "shop", name);
  REQUIRE(pod);
  (*pod)["metadata"].as_object()["labels"] = boost::json::parse(labels_json);
  api.upsert(FakeKubeApi::Resource::Pods, boost::json::serialize(*pod));
}

bool has_inpod_rules(int netns_fd) { return netns_state(netns_fd).find("ISTIO_OUTPUT") != std::string::npos; }

// A pod's "containers": a process in its netns and in a kubepods cgroup named after its UID.
struct PodProcess {
  PodProcess(const std::string& netns_name, const std::string& uid, const std::string& log)
      : process({"ip", "netns", "exec", netns_name, "sleep", "600"}, log) {
    const auto want = net::netns_id("/var/run/netns/" + netns_name);
    REQUIRE(want);
    REQUIRE(wait_until([&] {
      auto id = net::netns_id("/proc/" + std::to_string(process.pid()) + "/ns/net");
      return id && *id == *want;
    }, 5s));
    cgroup = std::make_unique<PodCgroup>(uid, process.pid());
    REQUIRE_MESSAGE(cgroup->ok(), "no writable cgroup hierarchy under /sys/fs/cgroup");
  }
  ChildProcess process;
  std::unique_ptr<PodCgroup> cgroup;
};

std::size_t identity_lines(const ChildProcess& zt, const std::string& src_ip, const std::string& identity) {
  const std::string log = zt.text();
  std::size_t n = 0;
  for (std::size_t start = 0; start < log.size();) {
    auto end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    const std::string line = log.substr(start, end - start);
    start = end + 1;
    if (line.find("direction=\"inbound\"") != std::string::npos && line.find("src.addr=" + src_ip + ":") != std::string::npos &&
        line.find("src.identity=\"" + identity + "\"") != std::string::npos)
      ++n;
  }
  return n;
}

}  // namespace

TEST_SUITE("cni/agent/kube_e2e") {
  TEST_CASE("labels enroll and unenroll running pods through the API watch, with faults" * doctest::skip(!is_root())) {
    if (needs_root("Kubernetes pod-source end-to-end test")) return;
    PodNetwork network;
    REQUIRE(network.ok());
    REQUIRE(network.add_pod("client", "10.82.1.1"));
    REQUIRE(network.add_pod("server", "10.82.1.2"));
    REQUIRE(network.add_pod("late", "10.82.1.3"));
    auto client_ns = net::open_netns(network.pod("client").path());
    auto server_ns = net::open_netns(network.pod("server").path());
    auto late_ns = net::open_netns(network.pod("late").path());
    REQUIRE((client_ns && server_ns && late_ns));
    const std::string client_before = netns_state(client_ns->get());
    const std::string server_before = netns_state(server_ns->get());

    TempDir dir("kube-e2e");
    PodProcess client_proc(network.pod("client").name(), kUidClient, dir.path() + "/client.log");
    PodProcess server_proc(network.pod("server").name(), kUidServer, dir.path() + "/server.log");
    NetnsEchoServer server_app(server_ns->get(), "10.82.1.2", 8080);
    REQUIRE(server_app.ok());

    FakeKubeApi api;
    api.upsert(FakeKubeApi::Resource::Namespaces, FakeKubeApi::namespace_json("shop"));
    api.upsert(FakeKubeApi::Resource::Namespaces, FakeKubeApi::namespace_json("kube-system", {{"istio.io/dataplane-mode", "ambient"}}));
    api.upsert(FakeKubeApi::Resource::Pods, pod_json("client", kUidClient, "10.82.1.1"));
    api.upsert(FakeKubeApi::Resource::Pods, pod_json("server", kUidServer, "10.82.1.2"));
    // A pod of another node and an excluded namespace's pod: never touched.
    api.upsert(FakeKubeApi::Resource::Pods, FakeKubeApi::pod_json("shop", "elsewhere", "node-2", "0a0000ff-0000-4000-8000-000000000000", "10.82.9.9"));

    // The node's CNI configuration as a primary CNI left it; the agent chains the plugin into it (INSTALL_CNI).
    const std::string net_d = dir.path() + "/net.d", cni_bin = dir.path() + "/opt-cni-bin";
    std::filesystem::create_directories(net_d);
    std::filesystem::create_directories(cni_bin);
    const std::string primary = R"({"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel","delegate":{"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]})";
    std::ofstream(net_d + "/10-flannel.conflist") << primary;
    auto read = [](const std::string& path) {
      std::ifstream in(path);
      return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    };

    REQUIRE(run_command({binary_dir() + "/ztunnel/hbone-demo", "ca", "--out", dir.path() + "/cacerts"}) == 0);
    std::ofstream(dir.path() + "/mesh.yaml") << kMesh;
    const std::string zds = dir.path() + "/zds.sock";
    auto start_agent = [&](int n) {
      return std::make_unique<ChildProcess>(
          std::vector<std::string>{binary_dir() + "/cni/agent/cni-agent", "run", "--zds-socket", zds, "--api-socket",
                                   dir.path() + "/agent.sock", "--state-dir", dir.path() + "/state", "--pod-source", "kubernetes",
                                   "--kube-api", api.url(), "--kube-ca", api.ca_file(), "--kube-token", api.token_file(),
                                   "--node-name", kNode, "--readiness", "127.0.0.1:0", "--log-level", "debug",
                                   "--install-cni=true", "--cni-bin-dir", binary_dir() + "/cni/plugin", "--cni-bin-target-dirs", cni_bin,
                                   "--mounted-cni-net-dir", net_d},
          dir.path() + "/agent-" + std::to_string(n) + ".log");
    };
    auto start_ztunnel = [&](int n) {
      return std::make_unique<ChildProcess>(
          std::vector<std::string>{binary_dir() + "/ztunnel/ztunnel", "--proxy-mode", "shared", "--inpod-uds", zds, "--local-config",
                                   dir.path() + "/mesh.yaml", "--cacerts", dir.path() + "/cacerts", "--node-name", kNode,
                                   "--worker-threads", "1", "--socks5", "false", "--termination-deadline", "1s", "--admin",
                                   "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--readiness", "127.0.0.1:0"},
          dir.path() + "/ztunnel-" + std::to_string(n) + ".log");
    };
    auto agent = start_agent(1);
    REQUIRE_MESSAGE(agent->wait_for("pod and namespace caches synced", 10s), agent->text());
    auto ztunnel = start_ztunnel(1);
    REQUIRE_MESSAGE(ztunnel->wait_for("zds: connected", 10s), ztunnel->text());

    // The plugin is on the node: its binary copied, its entry last in the primary conflist.
    CHECK(wait_until([&] { return std::filesystem::exists(cni_bin + "/ambient-cni"); }, 5s));
    CHECK_MESSAGE(wait_until([&] { return read(net_d + "/10-flannel.conflist").find("\"ambient-cni\"") != std::string::npos; }, 5s),
                  agent->text());
    CHECK(read(net_d + "/10-flannel.conflist").find(dir.path() + "/agent.sock") != std::string::npos);

    // Nothing is labelled: nothing is enrolled, nothing annotated.
    CHECK_FALSE(has_inpod_rules(client_ns->get()));
    CHECK(api.annotation("shop", "client", kRedirection).empty());

    // 1. The namespace label enrolls both running pods: rules in their netns, ztunnel takes them, annotated.
    api.upsert(FakeKubeApi::Resource::Namespaces, FakeKubeApi::namespace_json("shop", {{"istio.io/dataplane-mode", "ambient"}}));
    CHECK_MESSAGE(api.wait_for_annotation("shop", "client", kRedirection, "enabled", 10s), agent->text());
    CHECK_MESSAGE(api.wait_for_annotation("shop", "server", kRedirection, "enabled", 10s), agent->text());
    CHECK(ztunnel->wait_for(std::string("inpod: pod ") + kUidClient + " (shop/client) enrolled", 5s));
    CHECK(ztunnel->wait_for(std::string("inpod: pod ") + kUidServer + " (shop/server) enrolled", 5s));
    CHECK(has_inpod_rules(client_ns->get()));
    CHECK(has_inpod_rules(server_ns->get()));
    for (const auto& p : api.patches()) CHECK(p.subresource == "status");
    // Traffic between them now crosses HBONE with the client's SPIFFE identity.
    CHECK(echo_once(client_ns->get(), "10.82.1.2", 8080, "through the mesh"));
    CHECK_MESSAGE(wait_until([&] { return identity_lines(*ztunnel, "10.82.1.1", "spiffe://cluster.local/ns/shop/sa/client") >= 1; }, 5s),
                  ztunnel->text());

    // 2. The watch is cut and the history compacted while the client opts out: the agent relists (410) and
    //    still sees the change.
    api.drop_watches();
    api.compact();
    set_pod_labels(api, "client", R"({"istio.io/dataplane-mode":"none"})");
    api.compact();
    CHECK_MESSAGE(api.wait_until([&] { return api.annotation("shop", "client", kRedirection).empty(); }, 10s), agent->text());
    // It noticed through a 410 and relisted.
    CHECK(api.counters().lists >= 3);
    CHECK_MESSAGE(wait_until([&] { return netns_state(client_ns->get()) == client_before; }, 5s), agent->text());
    CHECK(has_inpod_rules(server_ns->get()));  // the server stays enrolled
    CHECK(api.annotation("shop", "server", kRedirection) == "enabled");

    // 3. A malformed event and API errors: logged and retried; nothing known is lost.
    api.inject_raw_watch_line("{\"type\":\"MODIFIED\",\"object\":{\"metadata\":");
    api.fail_next(3, 500);
    set_pod_labels(api, "client", R"({"istio.io/dataplane-mode":"ambient"})");
    CHECK_MESSAGE(api.wait_for_annotation("shop", "client", kRedirection, "enabled", 15s), agent->text());
    CHECK(has_inpod_rules(server_ns->get()));
    CHECK_MESSAGE(agent->text().find("watch event: JSON syntax error") != std::string::npos, agent->text());

    // 4. A pod whose netns cannot be found yet (no process of it runs): pending, retried, then enabled once it runs.
    api.upsert(FakeKubeApi::Resource::Pods, pod_json("late", kUidLate, "10.82.1.3"));
    CHECK_MESSAGE(api.wait_for_annotation("shop", "late", kRedirection, "pending", 10s), agent->text());
    CHECK_FALSE(has_inpod_rules(late_ns->get()));
    PodProcess late_proc(network.pod("late").name(), kUidLate, dir.path() + "/late.log");
    CHECK_MESSAGE(api.wait_for_annotation("shop", "late", kRedirection, "enabled", 15s), agent->text());
    CHECK(has_inpod_rules(late_ns->get()));

    // 5. No ztunnel: a pod labelled now gets its rules and stays pending (fail closed); a ztunnel connecting
    //    takes it and the annotation becomes enabled.
    ztunnel.reset();
    set_pod_labels(api, "late", R"({"istio.io/dataplane-mode":"none"})");
    CHECK(api.wait_until([&] { return api.annotation("shop", "late", kRedirection).empty(); }, 10s));
    set_pod_labels(api, "late", R"({"istio.io/dataplane-mode":"ambient"})");
    CHECK_MESSAGE(api.wait_for_annotation("shop", "late", kRedirection, "pending", 10s), agent->text());
    CHECK(has_inpod_rules(late_ns->get()));
    ztunnel = start_ztunnel(2);
    CHECK_MESSAGE(api.wait_for_annotation("shop", "late", kRedirection, "enabled", 15s), agent->text());

    // 6. The agent restarts: it relists, keeps every enrolled pod (rules and annotations unchanged).
    agent.reset();
    agent = start_agent(2);
    REQUIRE_MESSAGE(agent->wait_for("pod and namespace caches synced", 10s), agent->text());
    CHECK(ztunnel->wait_for("zds: connected", 10s));
    CHECK(api.annotation("shop", "server", kRedirection) == "enabled");
    CHECK(has_inpod_rules(server_ns->get()));

    // 7. The namespace label goes: its pods are unenrolled without a restart, netns as before, annotations gone.
    api.upsert(FakeKubeApi::Resource::Namespaces, FakeKubeApi::namespace_json("shop"));
    CHECK_MESSAGE(api.wait_until([&] { return api.annotation("shop", "server", kRedirection).empty(); }, 10s), agent->text());
    CHECK(wait_until([&] { return netns_state(server_ns->get()) == server_before; }, 5s));
    CHECK(api.annotation("shop", "client", kRedirection) == "enabled");  // the client's own label keeps it in
    // 8. A new pod's sandbox: the CNI plugin's ADD is decided by the same labels. A pod that opts in is enrolled
    //    before the ADD returns (its app starts captured); a pod that does not is let through, untouched.
    REQUIRE(network.add_pod("fresh", "10.82.1.4"));
    REQUIRE(network.add_pod("plain", "10.82.1.5"));
    auto fresh_ns = net::open_netns(network.pod("fresh").path());
    auto plain_ns = net::open_netns(network.pod("plain").path());
    REQUIRE((fresh_ns && plain_ns));
    api.upsert(FakeKubeApi::Resource::Pods, pod_json("fresh", kUidFresh, "10.82.1.4", R"({"istio.io/dataplane-mode":"ambient"})"));
    api.upsert(FakeKubeApi::Resource::Pods, pod_json("plain", kUidPlain, "10.82.1.5"));
    auto cni_add = [&](const std::string& name, const std::string& uid, const std::string& ip) {
      const std::string conf = R"({"cniVersion":"1.0.0","name":"k8s-pod-network","type":"ambient-cni","agent_socket":")" +
                               dir.path() + R"(/agent.sock","prevResult":{"cniVersion":"1.0.0","ips":[{"address":")" + ip +
                               R"(/16"}]}})";
      return cni::test_support::run_process(
          cni::test_support::plugin_path(),
          {"CNI_COMMAND=ADD", "CNI_CONTAINERID=c-" + name, "CNI_NETNS=" + network.pod(name).path(), "CNI_IFNAME=eth0",
           "CNI_PATH=/opt/cni/bin", "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=" + name + ";K8S_POD_UID=" + uid},
          conf);
    };
    const auto fresh_add = cni_add("fresh", kUidFresh, "10.82.1.4");
    CHECK_MESSAGE(fresh_add.exit_code == 0, fresh_add.out, fresh_add.err);
    CHECK(has_inpod_rules(fresh_ns->get()));  // already when the ADD returned
    CHECK_MESSAGE(api.wait_for_annotation("shop", "fresh", kRedirection, "enabled", 10s), agent->text());
    const std::string plain_before = netns_state(plain_ns->get());
    const auto plain_add = cni_add("plain", kUidPlain, "10.82.1.5");
    CHECK_MESSAGE(plain_add.exit_code == 0, plain_add.out, plain_add.err);
    CHECK(netns_state(plain_ns->get()) == plain_before);
    CHECK(api.annotation("shop", "plain", kRedirection).empty());

    // 9. A pod deleted from the API is unenrolled.
    api.remove(FakeKubeApi::Resource::Pods, "shop", "client");
    CHECK(wait_until([&] { return netns_state(client_ns->get()) == client_before; }, 10s));
    CHECK(api.annotation("shop", "elsewhere", kRedirection).empty());

    // 10. The agent stops and its DaemonSet is gone (the API server has none): the plugin is removed, the
    //     primary conflist says what it said before.
    CHECK(read(net_d + "/10-flannel.conflist").find("\"ambient-cni\"") != std::string::npos);
    agent.reset();
    CHECK(read(net_d + "/10-flannel.conflist").find("\"ambient-cni\"") == std::string::npos);
    CHECK(read(net_d + "/10-flannel.conflist").find("portmap") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(cni_bin + "/ambient-cni"));
  }
}
