// The waypoint end to end across network namespaces (root): every pod is a netns with a veth on one bridge
// (test/support/pod_network.h), the ztunnels and the waypoint are real processes in their pods (dedicated mode),
// and the client pod's outbound TCP to service VIPs is captured by an iptables REDIRECT to its ztunnel's 15001:
//   client pod (10.88.0.1) -> iptables -> ztunnel -> HBONE over veth -> waypoint pod (10.88.0.4) -> HBONE ->
//   ztunnel in pod v1 (10.88.0.5) | v2 (10.88.0.6) -> the app (HTTP/1.1 backend, or a grpc++ server in v1)
// It checks the issue's list on this path: a 90/10 weighted split over 2,000 requests, header-based routing, a
// denied path (403), retries over a flaky backend, 504 from a slow one, a WebSocket upgrade, and gRPC unary and
// bidirectional streaming with trailers. Prints SKIPPED without root (CI runs as root).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <fmt/format.h>

#include "common/h2/session.h"
#include "common/h2/transport.h"
#include "common/net/netns.h"
#include "common/net/tcp_stream.h"
#include "test/common/grpc/grpc_fixture.h"
#include "test/waypoint/support/grpc_calls.h"
#include "test/common/net/net_test_support.h"
#include "test/support/child_process.h"
#include "test/support/paths.h"
#include "test/support/pod_network.h"
#include "test/support/run_coro.h"
#include "test/support/wait.h"
#include "test/waypoint/support/waypoint_mesh.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

std::string netns_mesh_yaml(std::uint16_t grpc_port) {
  return fmt::format(R"(
workloads:
- {{uid: Kubernetes//Pod/demo/client, name: client, namespace: demo, serviceAccount: client, workloadIps: ["10.88.0.1"],
   protocol: HBONE, canonicalName: client}}
- {{uid: Kubernetes//Pod/demo/waypoint, name: waypoint, namespace: demo, serviceAccount: waypoint, workloadIps: ["10.88.0.4"],
   protocol: HBONE}}
- uid: Kubernetes//Pod/demo/echo-v1
  name: echo-v1
  namespace: demo
  serviceAccount: echo
  workloadIps: ["10.88.0.5"]
  protocol: HBONE
  canonicalName: echo
  canonicalRevision: v1
  services: {{"demo/echo.demo.svc.cluster.local": {{80: 8080}}, "demo/echo-v1.demo.svc.cluster.local": {{80: 8080}},
             "demo/grpc-echo.demo.svc.cluster.local": {{50051: {0}}}}}
- uid: Kubernetes//Pod/demo/echo-v2
  name: echo-v2
  namespace: demo
  serviceAccount: echo
  workloadIps: ["10.88.0.6"]
  protocol: HBONE
  canonicalName: echo
  canonicalRevision: v2
  services: {{"demo/echo.demo.svc.cluster.local": {{80: 8080}}, "demo/echo-v2.demo.svc.cluster.local": {{80: 8080}}}}
services:
- {{name: echo, namespace: demo, hostname: echo.demo.svc.cluster.local, vips: ["/10.88.200.20"], ports: {{80: 8080}},
   waypoint: {{destination: "/10.88.0.4", hboneMtlsPort: 15008}}}}
- {{name: echo-v1, namespace: demo, hostname: echo-v1.demo.svc.cluster.local, vips: ["/10.88.200.21"], ports: {{80: 8080}}}}
- {{name: echo-v2, namespace: demo, hostname: echo-v2.demo.svc.cluster.local, vips: ["/10.88.200.22"], ports: {{80: 8080}}}}
- {{name: grpc-echo, namespace: demo, hostname: grpc-echo.demo.svc.cluster.local, vips: ["/10.88.200.25"],
   ports: {{50051: {0}}}, waypoint: {{destination: "/10.88.0.4", hboneMtlsPort: 15008}}}}
)",
                     grpc_port);
}

std::string first_line(const std::string& body) { return body.substr(0, body.find('\n')); }

grpc::CallOptions plain_call() {
  grpc::CallOptions o;
  o.scheme = "http";
  o.authority = "grpc-echo.demo.svc.cluster.local:50051";
  o.timeout = 10s;
  return o;
}

asio::awaitable<void> run_session(std::shared_ptr<h2::Session> s) { (void)co_await s->run(); }

// An HTTP/2 (h2c) client session from inside the client pod to the grpc-echo VIP (captured by its iptables).
asio::awaitable<Result<std::shared_ptr<h2::Session>>> grpc_session_from(int netns_fd) {
  auto ex = co_await asio::this_coro::executor;
  auto sock = net::in_netns(netns_fd, [&]() -> Result<asio::ip::tcp::socket> {
    asio::ip::tcp::socket s(ex);
    boost::system::error_code ec;
    s.open(asio::ip::tcp::v4(), ec);
    if (ec) return errorf(ErrorKind::Io, "socket: {}", ec.message());
    return s;
  });
  if (!sock) co_return std::move(sock).error();
  auto c = co_await net::connect(std::move(*sock), {asio::ip::make_address("10.88.200.25"), 50051}, 5s);
  if (!c) co_return std::move(c).error();
  h2::Settings settings;
  settings.ping_interval = 0ms;
  auto s = h2::Session::client(ex, h2::make_transport(std::move(*c)), settings, "grpc-echo.demo:50051");
  if (!s) co_return std::move(s).error();
  asio::co_spawn(ex, run_session(*s), asio::detached);
  co_return *s;
}

}  // namespace

TEST_SUITE("waypoint/netns") {
  TEST_CASE("pods in network namespaces: client -> ztunnel -> waypoint -> ztunnel -> v1 | v2, captured by iptables" *
            doctest::skip(!is_root())) {
    if (needs_root("waypoint netns end-to-end test")) return;
    PodNetwork net;
    REQUIRE(net.ok());
    for (const auto& [name, ip] : {std::pair{"client", "10.88.0.1"}, std::pair{"waypoint", "10.88.0.4"}, std::pair{"v1", "10.88.0.5"},
                                   std::pair{"v2", "10.88.0.6"}})
      REQUIRE(net.add_pod(name, ip));
    auto client_ns = net::open_netns(net.pod("client").path());
    auto wp_ns = net::open_netns(net.pod("waypoint").path());
    auto v1_ns = net::open_netns(net.pod("v1").path());
    auto v2_ns = net::open_netns(net.pod("v2").path());
    REQUIRE(client_ns);
    REQUIRE(wp_ns);
    REQUIRE(v1_ns);
    REQUIRE(v2_ns);

    // The apps, their sockets created inside their pods: HTTP/1.1 backends v1 and v2, a grpc++ server in v1.
    auto v1 = net::in_netns(v1_ns->get(), [] { return std::make_unique<HttpBackend>("v1", "10.88.0.5", 8080); });
    auto v2 = net::in_netns(v2_ns->get(), [] { return std::make_unique<HttpBackend>("v2", "10.88.0.6", 8080); });
    REQUIRE(v1);
    REQUIRE(v2);
    ScratchDir scratch;
    auto grpc_server = net::in_netns(v1_ns->get(), [&] { return std::make_unique<GrpcTestServer>(scratch, std::vector<std::string>{}, "10.88.0.5"); });
    REQUIRE(grpc_server);
    REQUIRE_MESSAGE((*grpc_server)->started(), (*grpc_server)->error());

    const std::string dir = make_temp_dir();
    write_cacerts(dir + "/cacerts");
    std::ofstream(dir + "/mesh.yaml") << netns_mesh_yaml((*grpc_server)->port());
    std::ofstream(dir + "/routes.yaml") << routes_yaml(90, 10);
    const std::string zt_bin = binary_dir() + "/ztunnel/ztunnel", wp_bin = binary_dir() + "/waypoint/waypoint";
    auto ztunnel = [&](const std::string& pod, const char* info) {
      return std::vector<std::string>{"ip", "netns", "exec", net.pod(pod).name(), zt_bin, "--local-config", dir + "/mesh.yaml",
                                      "--workload-info", info, "--cacerts", dir + "/cacerts", "--bind", "0.0.0.0",
                                      "--packet-mark", "1337", "--socks5", "false", "--worker-threads", "1",
                                      // the app shares the pod netns without the in-pod routing rules (see the ztunnel netns test)
                                      "--orig-src", "false"};
    };
    ChildProcess z1(ztunnel("v1", "demo/echo-v1/echo"), dir + "/z1.log");
    ChildProcess z2(ztunnel("v2", "demo/echo-v2/echo"), dir + "/z2.log");
    ChildProcess zc(ztunnel("client", "demo/client/client"), dir + "/zc.log");
    ChildProcess wp({"ip", "netns", "exec", net.pod("waypoint").name(), wp_bin, "--local-config", dir + "/mesh.yaml", "--routes",
                     dir + "/routes.yaml", "--workload-info", "demo/waypoint/waypoint", "--cacerts", dir + "/cacerts", "--bind",
                     "0.0.0.0", "--admin", "10.88.0.4:15000", "--metrics", "10.88.0.4:15020", "--readiness", "10.88.0.4:15021",
                     "--worker-threads", "2"},
                    dir + "/wp.log");
    for (auto* p : {&z1, &z2, &zc}) REQUIRE_MESSAGE(p->wait_for(" ready:", 10s), p->text());
    REQUIRE_MESSAGE(wp.wait_for(" ready:", 10s), wp.text());
    // Capture the client app's TCP to the service VIPs (not its ztunnel's own marked sockets).
    REQUIRE(net.pod("client").netns->exec({"iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.88.200.0/24", "-m", "mark",
                                           "!", "--mark", "0x539/0xfff", "-j", "REDIRECT", "--to-ports", "15001"}) == 0);
    const auto logs = [&] { return "--- waypoint ---\n" + wp.text() + "\n--- client ztunnel ---\n" + zc.text(); };

    SocksHttpClient c(SocksHttpClient::CapturedConnect{client_ns->get()}, "10.88.200.20", 80);
    REQUIRE_MESSAGE(c.ok(), logs());

    // Header-based route, then the default rule's weighted split: 90/10 within tolerance over 2,000 requests.
    auto r = c.request("GET", "/hello", {{"x-version", "v2"}});
    REQUIRE_MESSAGE(r.status == 200, logs());
    CHECK(first_line(r.body) == "v2 GET /hello");
    int n1 = 0, n2 = 0;
    for (int i = 0; i < 2000; ++i) {
      auto s = c.request("GET", "/split");
      REQUIRE(s.status == 200);
      (s.headers["x-backend"] == "v1" ? n1 : n2)++;
    }
    // Binomial(2000, 0.9): mean 1800, sd 13.4; six sd either way.
    CHECK(n1 > 1720);
    CHECK(n1 < 1880);
    CHECK(n1 + n2 == 2000);

    // A denied path: 403 from the waypoint, nothing reaches an app, and the connection carries on.
    const auto before = (*v1)->requests() + (*v2)->requests();
    auto denied = c.request("GET", "/admin/users");
    CHECK(denied.status == 403);
    CHECK(denied.body == "RBAC: access denied");
    CHECK((*v1)->requests() + (*v2)->requests() == before);

    // Retries turn the flaky backend's two 503s into a success.
    const auto v1_before = (*v1)->requests();
    auto flaky = c.request("GET", "/flaky");
    CHECK(flaky.status == 200);
    CHECK((*v1)->requests() == v1_before + 3);

    // A slow backend: 504 at the route's 300 ms timeout.
    const auto t0 = std::chrono::steady_clock::now();
    auto slow = c.request("GET", "/delay/2000");
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(slow.status == 504);
    CHECK(took >= 280ms);
    CHECK(took < 1500ms);

    // WebSocket upgrade on a fresh connection: the 101 passes, then bytes flow both ways.
    {
      SocksHttpClient ws(SocksHttpClient::CapturedConnect{client_ns->get()}, "10.88.200.20", 80);
      REQUIRE(ws.ok());
      const std::string msg = "websocket frames, as opaque bytes, across four namespaces";
      const auto up = ws.websocket_echo(msg);
      CHECK(up.status == 101);
      CHECK(up.upgrade == "websocket");
      CHECK(up.read_ok);
      CHECK(up.echoed == msg);
    }

    // gRPC: a unary call and a bidirectional stream, trailers (grpc-status) included.
    asio::io_context io;
    const int cfd = client_ns->get();
    auto unary = run_coro(io, [](int fd) -> asio::awaitable<Result<EchoReply>> {
      auto s = co_await grpc_session_from(fd);
      if (!s) co_return std::move(s).error();
      EchoRequest req;
      req.set_message("unary across namespaces");
      co_return co_await grpc::unary_message<EchoReply>(*s, "/ambient.test.Echo/Unary", req, plain_call());
    }(cfd));
    REQUIRE_MESSAGE(unary.has_value(), (std::string(unary ? "" : unary.error().message()) + "\n" + logs()));
    CHECK(unary->message() == "unary across namespaces");
    auto streamed = run_coro(io, [](int fd) -> asio::awaitable<Result<std::vector<std::int64_t>>> {
      auto s = co_await grpc_session_from(fd);
      if (!s) co_return std::move(s).error();
      co_return co_await bidi_ping_pong(*s, 3, plain_call());
    }(cfd));
    REQUIRE_MESSAGE(streamed.has_value(), (std::string(streamed ? "" : streamed.error().message()) + "\n" + logs()));
    CHECK(*streamed == std::vector<std::int64_t>{1, 2, 3});

    // The waypoint counted it all, with the client's identity from its ztunnel's certificate.
    SocksHttpClient metrics(SocksHttpClient::CapturedConnect{wp_ns->get()}, "10.88.0.4", 15020);
    REQUIRE(metrics.ok());
    const std::string text = metrics.request("GET", "/metrics").body;
    CHECK(text.find("reporter=\"waypoint\",source_workload=\"client\"") != std::string::npos);
    CHECK(text.find("source_principal=\"spiffe://cluster.local/ns/demo/sa/client\"") != std::string::npos);
    CHECK(text.find("response_code=\"403\"") != std::string::npos);
    CHECK(text.find("request_protocol=\"grpc\"") != std::string::npos);
  }
}
