// ztunnel in shared (in-pod) mode against a ZDS peer played by the test: a real ztunnel process connects to
// the test's SOCK_SEQPACKET socket, receives pod network namespaces (real netns fds over SCM_RIGHTS) and
// must bind its listeners inside them, answer every request with one ACK or NACK, refuse malformed requests
// without crashing, retry a pod whose ports are taken, drain pods on Del and after a snapshot that omits
// them, replace a pod whose netns changed, and reconnect when the agent goes away. Root only.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/net/netns.h"
#include "common/net/socket_options.h"
#include "common/zds/messages.h"
#include "common/zds/seqpacket.h"
#include "test/common/net/net_test_support.h"
#include "test/support/child_process.h"
#include "test/support/paths.h"
#include "test/support/run_coro.h"
#include "test/ztunnel/support/mesh_clients.h"
#include "test/ztunnel/support/ztunnel_pair.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// The node agent's side of ZDS, driven step by step by the test.
class FakeAgent {
 public:
  FakeAgent(asio::io_context& io, const std::string& path) : io_(io), path_(path) {}
  bool listen() {
    auto l = zds::SeqPacketListener::listen(io_.get_executor(), path_);
    if (l) listener_.emplace(std::move(*l));
    return l.has_value();
  }
  void close_listener() {
    if (listener_) listener_->close();
    listener_.reset();
  }
  // Accepts ztunnel's next connection and reads its hello.
  Result<void> accept(std::chrono::milliseconds timeout = 10s) {
    return run_coro(io_, [](FakeAgent* self, std::chrono::milliseconds t) -> asio::awaitable<Result<void>> {
      using namespace asio::experimental::awaitable_operators;
      asio::steady_timer timer(self->io_);
      timer.expires_after(t);
      auto first = co_await (self->listener_->accept() || timer.async_wait(asio::use_awaitable));
      if (first.index() == 1) co_return errorf(ErrorKind::Timeout, "no ztunnel connection within {} ms", t.count());
      auto c = std::move(std::get<0>(first));
      if (!c) co_return std::move(c).error();
      self->conn_.emplace(std::move(*c));
      auto hello = co_await self->conn_->receive(5s);
      if (!hello) co_return std::move(hello).error();
      co_return zds::decode_hello(hello->bytes);
    }(this, timeout));
  }
  // Sends one request and returns the ack's error text ("" = ACK).
  Result<std::string> request(const std::string& bytes, std::vector<int> fds = {}) {
    return run_coro(io_, [](FakeAgent* self, std::string b, std::vector<int> f) -> asio::awaitable<Result<std::string>> {
      if (auto s = co_await self->conn_->send(b, f); !s) co_return std::move(s).error();
      auto reply = co_await self->conn_->receive(10s);
      if (!reply) co_return std::move(reply).error();
      co_return zds::decode_ack(reply->bytes);
    }(this, bytes, std::move(fds)));
  }
  // Sends a packet (raw: it may exceed what SeqPacketSocket::send allows) and reports whether ztunnel closed the
  // connection within 5 s without answering.
  bool send_expect_close(const std::string& bytes) {
    if (::send(conn_->native_handle(), bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) return false;
    return run_coro(io_, [](FakeAgent* self) -> asio::awaitable<bool> {
      auto reply = co_await self->conn_->receive(5s);
      co_return !reply && reply.error().kind == ErrorKind::Closed;
    }(this));
  }
  void drop() { conn_.reset(); }

 private:
  asio::io_context& io_;
  std::string path_;
  std::optional<zds::SeqPacketListener> listener_;
  std::optional<zds::SeqPacketSocket> conn_;
};

// True if something listens on `port` inside the netns (a plain connect to 127.0.0.1).
bool listening(int netns_fd, std::uint16_t port) {
  auto r = net::in_netns(netns_fd, [&]() -> bool {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(s);
    return ok;
  });
  return r && *r;
}

bool ztunnel_listens(int netns_fd) { return listening(netns_fd, 15001) && listening(netns_fd, 15006) && listening(netns_fd, 15008); }

// "<what> <ip>:<port>" from ztunnel's start-up line (std::regex is avoided: GCC 12 warns inside it under ASan).
std::optional<asio::ip::tcp::endpoint> logged_endpoint(const std::string& log, const std::string& what) {
  const auto at = log.find(what + " ");
  if (at == std::string::npos) return std::nullopt;
  const auto start = at + what.size() + 1;
  const auto end = log.find_first_not_of("0123456789.:", start);
  const std::string text = log.substr(start, end == std::string::npos ? std::string::npos : end - start);
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(text.substr(0, colon), ec);
  if (ec) return std::nullopt;
  return asio::ip::tcp::endpoint(ip, static_cast<std::uint16_t>(std::stoi(text.substr(colon + 1))));
}

const zds::WorkloadInfo kPod1{"pod1", "demo", "sa1"};
const zds::WorkloadInfo kPod3{"pod3", "demo", "sa3"};

}  // namespace

TEST_SUITE("ztunnel/netns/inpod") {
  TEST_CASE("ZDS: snapshot, per-pod listeners, NACKs for malformed requests, retry, drain, replace, reconnect" *
            doctest::skip(!is_root())) {
    if (needs_root("ztunnel in-pod ZDS test")) return;
    TempNetns p1, p3, p4;
    REQUIRE((p1.ok() && p3.ok() && p4.ok()));
    auto ns1 = net::open_netns(p1.path());
    auto ns3 = net::open_netns(p3.path());
    auto ns4 = net::open_netns(p4.path());
    REQUIRE((ns1 && ns3 && ns4));

    const std::string dir = make_temp_dir();
    write_cacerts(dir + "/cacerts");
    std::ofstream(dir + "/mesh.yaml") << "workloads: []\n";
    const std::string uds = dir + "/ztunnel.sock";
    asio::io_context io(1);
    FakeAgent agent(io, uds);
    REQUIRE(agent.listen());
    ChildProcess zt({binary_dir() + "/ztunnel/ztunnel", "--proxy-mode", "shared", "--inpod-uds", uds, "--local-config",
                     dir + "/mesh.yaml", "--cacerts", dir + "/cacerts", "--worker-threads", "2", "--socks5", "false", "--admin", "127.0.0.1:0",
                     "--metrics", "127.0.0.1:0", "--readiness", "127.0.0.1:0", "--log-level=info"},
                    dir + "/zt.log");
    REQUIRE_MESSAGE(zt.wait_for(" ready:", 10s), zt.text());
    auto ready_ep = logged_endpoint(zt.text(), "readiness");
    REQUIRE(ready_ep);
    auto ready = [&] { return http_get(*ready_ep, "/healthz/ready").find(" 200 ") != std::string::npos; };

    // 1. Hello, then the snapshot: an Add with the pod's netns, a Keep, SnapshotSent.
    auto hello = agent.accept();
    REQUIRE_MESSAGE(hello.has_value(), std::string(hello ? "" : hello.error().message()));
    CHECK_FALSE(ready());  // not before the snapshot
    auto r = agent.request(zds::encode_add("uid-1", kPod1), {ns1->get()});
    REQUIRE_MESSAGE(r.has_value(), (std::string(r ? "" : r.error().message()) + "\n" + zt.text()));
    CHECK(*r == "");
    r = agent.request(zds::encode_keep("uid-kept"));
    CHECK(r.value_or("?") == "");
    r = agent.request(zds::encode_snapshot_sent());
    CHECK(r.value_or("?") == "");
    CHECK(wait_for(ready, 5s));
    CHECK(ztunnel_listens(ns1->get()));
    CHECK_FALSE(listening(ns1->get(), 15080));  // SOCKS5 only when enabled

    // 2. Malformed or out-of-order requests: NACKed with the rule, the connection and the pods unharmed.
    r = agent.request(zds::encode_add("uid-2", kPod1));
    CHECK(r.value_or("").find("exactly one netns fd") != std::string::npos);
    r = agent.request(zds::encode_add("uid-2", kPod1), {ns3->get(), ns4->get()});
    CHECK(r.value_or("").find("exactly one netns fd, got 2") != std::string::npos);
    r = agent.request(zds::encode_del("uid-1"), {ns3->get()});
    CHECK(r.value_or("").find("must carry no fd") != std::string::npos);
    r = agent.request(zds::encode_add("uid-2", zds::WorkloadInfo{"", "", ""}), {ns3->get()});
    CHECK(r.value_or("").find("namespace and service_account") != std::string::npos);
    r = agent.request(zds::encode_keep("uid-1"));
    CHECK(r.value_or("").find("protocol error") != std::string::npos);
    r = agent.request(zds::encode_snapshot_sent());
    CHECK(r.value_or("").find("protocol error") != std::string::npos);
    const int regular_file = ::open((dir + "/mesh.yaml").c_str(), O_RDONLY | O_CLOEXEC);
    r = agent.request(zds::encode_add("uid-2", kPod1), {regular_file});
    ::close(regular_file);
    CHECK(r.value_or("").find("not a network namespace") != std::string::npos);
    CHECK(ready());
    CHECK(ztunnel_listens(ns1->get()));

    // 3. The same pod again (same netns): idempotent.
    r = agent.request(zds::encode_add("uid-1", kPod1), {ns1->get()});
    CHECK(r.value_or("?") == "");
    CHECK(zt.count("replacing its proxy") == 0);

    // 4. A pod whose port 15008 is taken: NACK, not ready, retried until the port is free.
    std::optional<asio::ip::tcp::acceptor> squatter;
    {
      auto l = net::in_netns(ns3->get(), [&] { return net::listen(io.get_executor(), {asio::ip::make_address("::"), 15008}); });
      REQUIRE(l);
      squatter.emplace(std::move(*l));
    }
    r = agent.request(zds::encode_add("uid-3", kPod3), {ns3->get()});
    CHECK(r.value_or("").find("failure to start proxy") != std::string::npos);
    CHECK(wait_for([&] { return !ready(); }, 2s));
    CHECK(http_get(*ready_ep, "/healthz/ready").find("pod uid-3 (demo/pod3) pending") != std::string::npos);
    squatter.reset();  // the port is free: the 5 s retry binds it
    CHECK(wait_for(ready, 8s));
    CHECK(ztunnel_listens(ns3->get()));

    // 5. Del: the pod's listeners go at once.
    r = agent.request(zds::encode_del("uid-3"));
    CHECK(r.value_or("?") == "");
    CHECK(wait_for([&] { return !listening(ns3->get(), 15008); }, 2s));
    CHECK(ztunnel_listens(ns1->get()));

    // 6. Bytes that are not a WorkloadRequest: ztunnel closes the connection and reconnects; a packet over 1024 bytes too.
    CHECK(agent.send_expect_close(std::string("\xff\xff\xff\xff garbage", 13)));
    REQUIRE(agent.accept().has_value());
    CHECK(agent.send_expect_close(std::string(1500, 'x')));
    REQUIRE(agent.accept().has_value());
    CHECK(ztunnel_listens(ns1->get()));  // pods outlive the agent connection

    // 7. A new connection's snapshot that no longer has pod 1: drained after SnapshotSent.
    r = agent.request(zds::encode_snapshot_sent());
    CHECK(r.value_or("?") == "");
    CHECK(wait_for([&] { return !listening(ns1->get(), 15008); }, 2s));

    // 8. Same uid, new netns (the sandbox was re-created): the old proxy is replaced.
    r = agent.request(zds::encode_add("uid-1", kPod1), {ns1->get()});
    CHECK(r.value_or("?") == "");
    CHECK(wait_for([&] { return ztunnel_listens(ns1->get()); }, 2s));
    r = agent.request(zds::encode_add("uid-1", kPod1), {ns4->get()});
    CHECK(r.value_or("?") == "");
    CHECK(wait_for([&] { return !listening(ns1->get(), 15008); }, 2s));
    CHECK(ztunnel_listens(ns4->get()));
    CHECK(zt.count("replacing its proxy") == 1);

    // 9. The agent goes away entirely and comes back: ztunnel is not ready meanwhile, keeps its pods, reconnects.
    agent.drop();
    agent.close_listener();
    CHECK(wait_for([&] { return !ready(); }, 3s));
    CHECK(ztunnel_listens(ns4->get()));
    std::this_thread::sleep_for(300ms);
    REQUIRE(agent.listen());
    REQUIRE(agent.accept(20s).has_value());
    r = agent.request(zds::encode_add("uid-1", kPod1), {ns4->get()});
    CHECK(r.value_or("?") == "");
    r = agent.request(zds::encode_snapshot_sent());
    CHECK(r.value_or("?") == "");
    CHECK(wait_for(ready, 5s));
    CHECK(zt.count("replacing its proxy") == 1);  // same netns: kept, not replaced

    const std::string log = zt.text();
    INFO(log);
    CHECK(log.find("inpod: pod uid-1 (demo/pod1) enrolled") != std::string::npos);
    CHECK(zt.stop() == 0);  // SIGTERM: a clean drain, no crash at any point
    std::filesystem::remove_all(dir);
  }
}
