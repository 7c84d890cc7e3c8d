// A ztunnel pair whose state comes from fake-istiod (a real grpc++ process) over Delta ADS: traffic,
// live policy pushes (late enforcement), NACKed resources, a control plane that dies and returns, and
// refused credentials. The HBONE identities come from the built-in CA (shared cacerts), the state only
// from xDS.
#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/base/log.h"
#include "test/support/fake_istiod.h"
#include "test/support/run_coro.h"
#include "test/ztunnel/support/mesh_clients.h"
#include "test/ztunnel/support/ztunnel_pair.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

std::string deny_port_yaml(std::uint16_t port) {
  return fmt::format(R"(
policies:
- name: deny-echo
  namespace: demo
  scope: Namespace
  action: Deny
  rules:
  - - - destinationPorts: [{}]
)", port);
}

ztunnel::Config xds_config(const istiod::IstiodEnv& env, const std::string& cacerts, const char* ip, const char* workload_info,
                           const std::string& token_file, const std::string& roots = {}) {
  auto c = pair_config("", cacerts, ip, workload_info, 1);
  c.local_config_path.clear();
  c.control_plane.xds_address = fmt::format("https://127.0.0.1:{}", env.port());
  c.control_plane.xds_root_ca = roots.empty() ? env.file("ca.pem") : roots;
  c.control_plane.auth_token_path = token_file;
  c.control_plane.instance_ip = "10.1.2.3";
  c.control_plane.pod_name = "ztunnel-x";
  c.control_plane.pod_namespace = "istio-system";
  c.control_plane.proxy_metadata = {{"ISTIO_VERSION", "1.99.0"}};
  return c;
}

// Polls the ztunnel's readiness endpoint until it answers 200.
bool wait_ready(const ztunnel::App& app, std::chrono::milliseconds timeout = 10s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (http_get(app.readiness_endpoint(), "/healthz/ready").starts_with("HTTP/1.1 200")) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::string config_dump(const ztunnel::App& app) { return http_get(app.admin_endpoint(), "/config_dump"); }

// The integer after "\"key\": " in the xds part of a config dump.
long xds_value(const std::string& dump, const std::string& key) {
  const auto x = dump.find("\"xds\": {");
  if (x == std::string::npos) return -1;
  const auto p = dump.find("\"" + key + "\": ", x);
  return p == std::string::npos ? -1 : std::atol(dump.c_str() + p + key.size() + 4);
}

struct XdsMesh {
  istiod::IstiodEnv istiod;
  std::string dir = make_temp_dir();
  EchoApp echo{"127.0.0.3"};
  AccessLogCapture log;
  std::unique_ptr<RunningZtunnel> server, client;

  explicit XdsMesh(std::vector<std::string> istiod_flags = {}) {
    (void)ambient::log::set_level("warn");
    telemetry::access_logger()->set_level(spdlog::level::debug);
    write_cacerts(dir + "/cacerts");
    std::ofstream(dir + "/token") << "s3cret\n";
    istiod.write_config("workloads.yaml", two_workloads_yaml(echo.port()));
    istiod_flags.insert(istiod_flags.begin(), {"--token", "s3cret"});
    REQUIRE_MESSAGE(istiod.start(istiod_flags), istiod.error());
  }
  void start_pair() {
    server = std::make_unique<RunningZtunnel>(xds_config(istiod, dir + "/cacerts", "127.0.0.3", "demo/server/server", dir + "/token"));
    client = std::make_unique<RunningZtunnel>(xds_config(istiod, dir + "/cacerts", "127.0.0.2", "demo/client/client", dir + "/token"));
    REQUIRE(wait_ready(*server->app));
    REQUIRE(wait_ready(*client->app));
  }
  ~XdsMesh() {
    client.reset();
    server.reset();
    std::filesystem::remove_all(dir);
  }
};

// One echo round trip of `text` on an open tunnel; empty on failure.
asio::awaitable<std::string> echo_once(net::TcpStream& s, std::string text) {
  if (!co_await s.write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size())))
    co_return std::string();
  std::string got;
  std::uint8_t buf[256];
  while (got.size() < text.size()) {
    auto n = co_await s.read_some(buf);
    if (!n || *n == 0) co_return std::string();
    got.append(reinterpret_cast<const char*>(buf), *n);
  }
  co_return got;
}

}  // namespace

TEST_SUITE("ztunnel/integration/xds") {
  TEST_CASE("state from fake-istiod: ready after the first pushes, traffic flows, config_dump shows the xDS stream") {
    XdsMesh mesh;
    mesh.start_pair();
    asio::io_context io;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await socks_connect("127.0.0.3", mesh.echo.port());
      REQUIRE(c);
      REQUIRE(c->first == 0);
      CHECK(co_await echo_once(c->second, "hello over xds state") == "hello over xds state");
    }());
    const std::string log = mesh.log.wait_for("spiffe://cluster.local/ns/demo/sa/client", 2);
    CHECK(log.find("spiffe://cluster.local/ns/demo/sa/client") != std::string::npos);  // the server saw the identity
    const std::string dump = config_dump(*mesh.client->app);
    INFO(dump);
    CHECK(dump.find("Kubernetes//Pod/demo/server") != std::string::npos);
    CHECK(dump.find("\"connected\": true") != std::string::npos);
    CHECK(xds_value(dump, "acks") >= 2);  // one per type at least
    CHECK(xds_value(dump, "nacks") == 0);
    // The node as reference 4.4: "ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local" and string metadata.
    const std::string status = mesh.istiod.admin("GET", "/status").body;
    INFO(status);
    CHECK(status.find("\"last_node\": \"ztunnel~10.1.2.3~ztunnel-x.istio-system~istio-system.svc.cluster.local ") !=
          std::string::npos);
    CHECK(status.find("CLUSTER_ID=Kubernetes") != std::string::npos);
    CHECK(status.find("INSTANCE_IPS=10.1.2.3") != std::string::npos);
    CHECK(status.find("ISTIO_VERSION=1.99.0") != std::string::npos);  // from ISTIO_META_ISTIO_VERSION
    // fake-istiod timed each push to its ACK (what bench/xds.sh reports): one answer per push at least.
    const std::string answers = mesh.istiod.admin("GET", "/answer-latencies").body;
    CHECK(answers.starts_with("["));
    CHECK(std::count(answers.begin(), answers.end(), ',') >= 3);  // 2 types x 2 ztunnels
  }

  TEST_CASE("policy push: new connections are denied and a live one is closed (late enforcement, DENY flag)") {
    XdsMesh mesh;
    mesh.start_pair();
    asio::io_context io;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto live = co_await socks_connect("127.0.0.3", mesh.echo.port());
      REQUIRE(live);
      REQUIRE(live->first == 0);
      REQUIRE(co_await echo_once(live->second, "before the policy") == "before the policy");

      mesh.istiod.write_config("policies.yaml", deny_port_yaml(mesh.echo.port()));
      // The live connection is closed by the server ztunnel once the push reaches it.
      std::uint8_t buf[64];
      asio::steady_timer guard(io);
      guard.expires_after(10s);
      guard.async_wait([&](boost::system::error_code ec) {
        if (!ec) live->second.close();  // a hang fails below instead of blocking the test
      });
      auto n = co_await live->second.read_some(buf);
      guard.cancel();
      CHECK((!n || *n == 0));

      auto denied = co_await socks_connect("127.0.0.3", mesh.echo.port());
      REQUIRE(denied);
      CHECK(denied->first == 0x02);  // connection not allowed by ruleset (the server answered 401)
    }());
    const std::string log = mesh.log.wait_for("policy rejection after a policy change");
    INFO(log);
    CHECK(log.find("policy rejection after a policy change: deny: explicitly denied by: demo/deny-echo") != std::string::npos);
    const std::string metrics = http_get(mesh.server->app->metrics_endpoint());
    CHECK(metrics.find("response_flags=\"DENY\"") != std::string::npos);
  }

  TEST_CASE("invalid resource in a push: NACKed with the reason, the other resources still apply") {
    XdsMesh mesh({"--invalid-resource", "1"});
    mesh.start_pair();
    const std::string dump = config_dump(*mesh.client->app);
    INFO(dump);
    CHECK(xds_value(dump, "nacks") >= 1);
    CHECK(dump.find("invalid/bad-workload") != std::string::npos);  // named in lastNack
    CHECK(dump.find("Kubernetes//Pod/demo/server") != std::string::npos);
    CHECK(mesh.istiod.status_value("nacks") >= 2);  // both ztunnels NACKed
    asio::io_context io;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await socks_connect("127.0.0.3", mesh.echo.port());
      REQUIRE(c);
      CHECK(c->first == 0);
      CHECK(co_await echo_once(c->second, "still works") == "still works");
    }());
  }

  TEST_CASE("fake-istiod killed mid-stream: live and new connections keep working; it returns and ztunnel resyncs") {
    XdsMesh mesh;
    mesh.start_pair();
    const auto port = mesh.istiod.port();
    const long applied_before = xds_value(config_dump(*mesh.client->app), "applied");
    CHECK(applied_before == 3);  // two workloads and a service
    asio::io_context io;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto live = co_await socks_connect("127.0.0.3", mesh.echo.port());
      REQUIRE(live);
      REQUIRE(live->first == 0);
      REQUIRE(co_await echo_once(live->second, "one") == "one");

      mesh.istiod.stop();
      CHECK(wait_for([&] { return config_dump(*mesh.client->app).find("\"connected\": false") != std::string::npos; }));
      CHECK(co_await echo_once(live->second, "two, control plane down") == "two, control plane down");
      auto fresh = co_await socks_connect("127.0.0.3", mesh.echo.port());  // the last good state still routes
      REQUIRE(fresh);
      CHECK(fresh->first == 0);
      CHECK(co_await echo_once(fresh->second, "new while down") == "new while down");

      // While it is down, the mesh changes: a new service appears. Then it comes back on the same port.
      mesh.istiod.write_config("extra.yaml", R"(
services:
- name: late
  namespace: demo
  hostname: late.demo.svc.cluster.local
  vips: ["/127.10.0.11"]
  ports: {80: 80}
)");
      REQUIRE_MESSAGE(mesh.istiod.start({"--listen", fmt::format("127.0.0.1:{}", port)}), mesh.istiod.error());
      CHECK(wait_for([&] { return config_dump(*mesh.client->app).find("late.demo.svc.cluster.local") != std::string::npos; }));
      CHECK(co_await echo_once(live->second, "three, after the return") == "three, after the return");
    }());
    const std::string dump = config_dump(*mesh.client->app);
    INFO(dump);
    CHECK(xds_value(dump, "streams") == 2);
    // Resync sent only what changed: the reconnect's initial_resource_versions covered the rest.
    CHECK(xds_value(dump, "applied") == applied_before + 1);
    std::size_t workloads = 0;
    for (auto p = dump.find("\"uid\":"); p != std::string::npos; p = dump.find("\"uid\":", p + 1)) ++workloads;
    CHECK(workloads == 2);  // no duplicates
  }

  TEST_CASE("NODE_NAME: certificates are prefetched for the node's HBONE workloads and forgotten when they leave") {
    XdsMesh mesh;
    mesh.istiod.write_config("node.yaml", R"(
workloads:
- uid: Kubernetes//Pod/demo/db-0
  name: db-0
  namespace: demo
  serviceAccount: db
  node: node-a
  workloadIps: ["127.0.0.20"]
  protocol: HBONE
- uid: Kubernetes//Pod/demo/legacy-0
  name: legacy-0
  namespace: demo
  serviceAccount: legacy
  node: node-a
  workloadIps: ["127.0.0.21"]
  protocol: TCP
- uid: Kubernetes//Pod/demo/web-0
  name: web-0
  namespace: demo
  serviceAccount: web
  node: node-b
  workloadIps: ["127.0.0.22"]
  protocol: HBONE
)");
    auto config = xds_config(mesh.istiod, mesh.dir + "/cacerts", "127.0.0.2", "demo/client/client", mesh.dir + "/token");
    config.control_plane.node_name = "node-a";
    RunningZtunnel zt(std::move(config));
    const auto has_cert = [&](const char* sa) {
      return config_dump(*zt.app).find(fmt::format("\"identity\": \"spiffe://cluster.local/ns/demo/sa/{}\"", sa)) != std::string::npos;
    };
    CHECK(wait_for([&] { return has_cert("db"); }));
    CHECK(has_cert("client"));       // the local workload's, always
    CHECK_FALSE(has_cert("legacy"));  // not HBONE
    CHECK_FALSE(has_cert("web"));     // another node
    mesh.istiod.write_config("node.yaml", "workloads: []\n");  // db-0 leaves the node
    CHECK(wait_for([&] { return !has_cert("db"); }));
    CHECK(has_cert("client"));
  }

  TEST_CASE("wrong token: not ready, and the reason is named") {
    XdsMesh mesh;
    std::ofstream(mesh.dir + "/bad-token") << "wrong\n";
    RunningZtunnel bad_token(xds_config(mesh.istiod, mesh.dir + "/cacerts", "127.0.0.2", "demo/client/client", mesh.dir + "/bad-token"));
    CHECK(wait_for([&] { return config_dump(*bad_token.app).find("UNAUTHENTICATED: authorization token wrong") != std::string::npos; }, 5s));
    CHECK_FALSE(http_get(bad_token.app->readiness_endpoint(), "/healthz/ready").starts_with("HTTP/1.1 200"));
    INFO(config_dump(*bad_token.app));
  }

  TEST_CASE("wrong roots: the TLS verification failure is named") {
    XdsMesh mesh;
    write_cacerts(mesh.dir + "/other");
    RunningZtunnel bad_roots(xds_config(mesh.istiod, mesh.dir + "/cacerts", "127.0.0.2", "demo/client/client", mesh.dir + "/token",
                                        mesh.dir + "/other/root-cert.pem"));
    CHECK(wait_for([&] { return config_dump(*bad_roots.app).find("certificate verify: unable to get local issuer certificate") != std::string::npos; }, 5s));
    CHECK_FALSE(http_get(bad_roots.app->readiness_endpoint(), "/healthz/ready").starts_with("HTTP/1.1 200"));
    INFO(config_dump(*bad_roots.app));
  }
}
