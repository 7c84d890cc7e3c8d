// Two "nodes" as network namespaces joined by a veth pair, each running a real ztunnel process in dedicated
// mode next to its app (Istio's dedicated mode: listeners in the workload's own netns). In node A an
// iptables REDIRECT sends the client app's TCP to ztunnel A's 15001; ztunnel A reads SO_ORIGINAL_DST,
// tunnels over HBONE (mTLS + HTTP/2 CONNECT) to ztunnel B's 15008 across the veth, and B connects to the
// app. Root only: it prints SKIPPED with the reason otherwise (CI runs as root).
#include <doctest/doctest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include "common/net/netns.h"
#include "common/net/tcp_stream.h"
#include "test/common/net/net_test_support.h"
#include "test/support/child_process.h"
#include "test/support/paths.h"
#include "test/support/run_coro.h"
#include "test/ztunnel/support/ztunnel_pair.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

using Child = ChildProcess;

constexpr const char* kYaml = R"(
workloads:
- uid: Kubernetes//Pod/demo/client
  name: client
  namespace: demo
  serviceAccount: client
  workloadIps: ["10.77.0.1"]
  protocol: HBONE
- uid: Kubernetes//Pod/demo/server
  name: server
  namespace: demo
  serviceAccount: server
  workloadIps: ["10.77.0.2"]
  protocol: HBONE
)";

}  // namespace

TEST_SUITE("ztunnel/netns/dedicated") {
  TEST_CASE("iptables REDIRECT -> ztunnel A -> HBONE over veth -> ztunnel B -> app" * doctest::skip(!is_root())) {
    if (needs_root("ztunnel dedicated-mode netns test")) return;
    TempNetns a, b;
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    const std::string veth_a = "zta" + std::to_string(getpid() % 100000), veth_b = "ztb" + std::to_string(getpid() % 100000);
    REQUIRE(run_command({"ip", "link", "add", veth_a, "netns", a.name(), "type", "veth", "peer", "name", veth_b, "netns", b.name()}) == 0);
    REQUIRE(a.exec({"ip", "addr", "add", "10.77.0.1/24", "dev", veth_a}) == 0);
    REQUIRE(b.exec({"ip", "addr", "add", "10.77.0.2/24", "dev", veth_b}) == 0);
    REQUIRE(a.exec({"ip", "link", "set", veth_a, "up"}) == 0);
    REQUIRE(b.exec({"ip", "link", "set", veth_b, "up"}) == 0);

    const std::string dir = make_temp_dir();
    write_cacerts(dir + "/cacerts");
    std::ofstream(dir + "/mesh.yaml") << kYaml;
    const std::string bin = binary_dir() + "/ztunnel/ztunnel";
    auto ztunnel = [&](const TempNetns& ns, const char* info, const char* extra) {
      std::vector<std::string> args = {"ip", "netns", "exec", ns.name(), bin, "--local-config", dir + "/mesh.yaml",
                                       "--workload-info", info, "--cacerts", dir + "/cacerts", "--bind", "0.0.0.0",
                                       "--packet-mark", "1337", "--socks5", "false", "--worker-threads", "1",
                                       // The app shares the netns: keeping the client IP would need the in-pod routing
                                       // rules (mark + table 100) for the replies, which come with the CNI issue.
                                       "--orig-src", "false", extra};
      return args;
    };
    Child zb(ztunnel(b, "demo/server/server", "--log-level=info"), dir + "/b.log");
    Child za(ztunnel(a, "demo/client/client", "--log-level=info"), dir + "/a.log");
    REQUIRE_MESSAGE(zb.wait_for(" ready:", 10s), zb.text());
    REQUIRE_MESSAGE(za.wait_for(" ready:", 10s), za.text());
    // Capture the client app's TCP to the server app (not ztunnel's own marked sockets).
    REQUIRE(a.exec({"iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.77.0.2", "--dport", "8080", "-m", "mark",
                    "!", "--mark", "0x539/0xfff", "-j", "REDIRECT", "--to-ports", "15001"}) == 0);

    asio::io_context io(1);
    auto bns = net::open_netns(b.path());
    auto ans = net::open_netns(a.path());
    REQUIRE(bns);
    REQUIRE(ans);
    // The server app: a listener created inside node B.
    auto app = net::in_netns(bns->get(), [&] { return net::listen(io.get_executor(), {asio::ip::make_address("10.77.0.2"), 8080}); });
    REQUIRE(app);
    std::string app_saw_peer;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
          auto c = co_await net::accept(*app);
          if (!c) co_return;
          app_saw_peer = c->peer().address().to_string();
          std::vector<std::uint8_t> buf(65536);
          for (;;) {
            auto n = co_await c->read_some(buf);
            if (!n || *n == 0) break;
            if (!co_await c->write_all(std::span<const std::uint8_t>(buf.data(), *n))) co_return;
          }
          (void)co_await c->shutdown_write();
        }, asio::detached);

    std::vector<std::uint8_t> data(2 << 20);
    fill_pattern(data, 0);
    auto got = run_coro(io, [&]() -> asio::awaitable<Result<std::vector<std::uint8_t>>> {
      using namespace asio::experimental::awaitable_operators;
      // The client app: a socket created inside node A, connecting to the server app's address.
      auto sock = net::in_netns(ans->get(), [&] {
        tcp::socket s(io);
        s.open(tcp::v4());
        return s;
      });
      if (!sock) co_return sock.error();
      auto c = co_await net::connect(std::move(*sock), {asio::ip::make_address("10.77.0.2"), 8080}, 5s);
      if (!c) co_return c.error();
      std::vector<std::uint8_t> back;
      Result<void> w = ok();
      auto writer = [&]() -> asio::awaitable<void> {
        w = co_await c->write_all(data);
        if (w) w = co_await c->shutdown_write();
      };
      auto reader = [&]() -> asio::awaitable<void> {
        std::vector<std::uint8_t> buf(65536);
        for (;;) {
          auto n = co_await c->read_some(buf);
          if (!n || *n == 0) co_return;
          back.insert(back.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
        }
      };
      co_await (writer() && reader());
      if (!w) co_return w.error();
      co_return back;
    }());
    REQUIRE_MESSAGE(got.has_value(), (std::string(got ? "" : got.error().message()) + "\n--- A ---\n" + za.text() + "\n--- B ---\n" + zb.text()));
    CHECK(got->size() == data.size());
    CHECK((*got == data));
    CHECK(app_saw_peer == "10.77.0.2");  // ztunnel B connected to the app from inside node B
    // Each side writes its access-log line when its own copy ends.
    REQUIRE(zb.wait_for("direction=\"inbound\"", 5s));
    REQUIRE(za.wait_for("direction=\"outbound\"", 5s));
    const std::string blog = zb.text(), alog = za.text();
    INFO(blog);
    INFO(alog);
    CHECK(blog.find("src.identity=\"spiffe://cluster.local/ns/demo/sa/client\"") != std::string::npos);
    CHECK(blog.find("dst.hbone_addr=10.77.0.2:8080") != std::string::npos);
    CHECK(blog.find("bytes_recv=2097152") != std::string::npos);
    CHECK(alog.find("direction=\"outbound\"") != std::string::npos);
    CHECK(alog.find("dst.addr=10.77.0.2:15008") != std::string::npos);  // tunnelled, not passthrough

    // Inbound plaintext: a connection to port 8081 is not captured in node A, so it arrives in node B as
    // plain TCP; B's PREROUTING REDIRECT sends it to ztunnel B's 15006 (no identity), which forwards it to
    // the app after authorization.
    REQUIRE(b.exec({"iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-d", "10.77.0.2", "--dport", "8081", "-j",
                    "REDIRECT", "--to-ports", "15006"}) == 0);
    auto app2 = net::in_netns(bns->get(), [&] { return net::listen(io.get_executor(), {asio::ip::make_address("10.77.0.2"), 8081}); });
    REQUIRE(app2);
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
          auto c = co_await net::accept(*app2);
          if (!c) co_return;
          std::vector<std::uint8_t> buf(65536);
          for (;;) {
            auto n = co_await c->read_some(buf);
            if (!n || *n == 0) break;
            if (!co_await c->write_all(std::span<const std::uint8_t>(buf.data(), *n))) co_return;
          }
          (void)co_await c->shutdown_write();
        }, asio::detached);
    auto plain = run_coro(io, [&]() -> asio::awaitable<Result<std::string>> {
      auto sock = net::in_netns(ans->get(), [&] {
        tcp::socket s(io);
        s.open(tcp::v4());
        return s;
      });
      if (!sock) co_return sock.error();
      auto c = co_await net::connect(std::move(*sock), {asio::ip::make_address("10.77.0.2"), 8081}, 5s);
      if (!c) co_return c.error();
      const std::string msg = "plaintext hello";
      if (auto w = co_await c->write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size())); !w)
        co_return w.error();
      (void)co_await c->shutdown_write();
      std::string back;
      std::vector<std::uint8_t> buf(1024);
      for (;;) {
        auto n = co_await c->read_some(buf);
        if (!n || *n == 0) break;
        back.append(reinterpret_cast<const char*>(buf.data()), *n);
      }
      co_return back;
    }());
    REQUIRE_MESSAGE(plain.has_value(), (plain ? std::string() : plain.error().message()));
    CHECK(*plain == "plaintext hello");
    REQUIRE(zb.wait_for("dst.addr=10.77.0.2:8081", 5s));
    const std::string blog2 = zb.text();
    const auto line_start = blog2.rfind('\n', blog2.find("dst.addr=10.77.0.2:8081"));
    const std::string line = blog2.substr(line_start + 1, blog2.find('\n', line_start + 1) - line_start - 1);
    INFO(line);
    CHECK(line.find("direction=\"inbound\"") != std::string::npos);
    CHECK(line.find("src.identity") == std::string::npos);  // plaintext: no identity
    CHECK(line.find("bytes_recv=15") != std::string::npos);
    std::filesystem::remove_all(dir);
  }
}
