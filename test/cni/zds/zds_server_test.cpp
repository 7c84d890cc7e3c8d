// The real ZdsServer against fake ztunnels written here with SeqPacketSocket: each says hello, reads requests
// with zds::decode_request (ztunnel's own rules) and acks or nacks as the test wants.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "cni/zds/zds_server.h"
#include "common/zds/messages.h"
#include "common/zds/seqpacket.h"
#include "test/common/zds/zds_test_support.h"
#include "test/support/paths.h"
#include "test/support/run_coro.h"

using namespace ambient;
using namespace ambient::cni;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::awaitable;
using std::chrono::milliseconds;
using zds::RequestKind;
using zds::SeqPacketSocket;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
const zds::WorkloadInfo kInfo{"web-0", "shop", "web-sa"};

// Short deadlines so failures show up in milliseconds; the defaults (5 s) are checked separately.
ZdsServerOptions fast_options() {
  ZdsServerOptions o;
  o.hello_timeout = 300ms;
  o.ack_timeout = 300ms;
  o.keepalive_interval = 50ms;
  o.accepts_per_second = 1000;
  return o;
}

awaitable<void> sleep_for(milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(kUseTuple);
}

// Polls `cond` every 2 ms; false if it is still false after `limit`. GCC 12 destroys a lambda temporary inside
// a co_await expression twice: pass a named std::function (or use the Harness helpers below).
awaitable<bool> eventually(const std::function<bool()>& cond, milliseconds limit = 2s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) co_return false;
    co_await sleep_for(2ms);
  }
  co_return true;
}

// A server call running in the background while the fake ztunnel answers it.
using CallResult = std::shared_ptr<std::optional<Result<void>>>;

awaitable<void> store_result(awaitable<Result<void>> call, CallResult out) { out->emplace(co_await std::move(call)); }

awaitable<CallResult> start_call(awaitable<Result<void>> call) {
  auto out = std::make_shared<std::optional<Result<void>>>();
  asio::co_spawn(co_await asio::this_coro::executor, store_result(std::move(call), out), asio::detached);
  co_return out;
}

awaitable<Result<void>> finish_call(CallResult call, milliseconds limit = 3s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!call->has_value()) {
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "server call did not complete");
    co_await sleep_for(2ms);
  }
  co_return **call;
}

// ---- the fake ztunnel ----

awaitable<SeqPacketSocket> connect_ztunnel(std::string path) {
  auto ex = co_await asio::this_coro::executor;
  auto s = SeqPacketSocket::connect(ex, path);
  REQUIRE_MESSAGE(s, s.error().message());
  co_return std::move(*s);
}

awaitable<void> send_packet(SeqPacketSocket& s, std::string bytes) {
  auto sent = co_await s.send(bytes);
  REQUIRE_MESSAGE(sent, sent.error().message());
}

awaitable<SeqPacketSocket> connect_and_hello(std::string path) {
  auto s = co_await connect_ztunnel(path);
  co_await send_packet(s, zds::encode_hello());
  co_return s;
}

awaitable<zds::Request> next_request(SeqPacketSocket& s, milliseconds limit = 2s) {
  auto packet = co_await s.receive(limit);
  REQUIRE_MESSAGE(packet, packet.error().message());
  auto request = zds::decode_request(std::move(*packet));
  REQUIRE_MESSAGE(request, request.error().message());
  co_return std::move(*request);
}

awaitable<void> answer(SeqPacketSocket& s, std::string nack_reason = "") {
  co_await send_packet(s, zds::encode_ack(nack_reason));
}

// Acks the whole snapshot; returns its requests, SnapshotSent last.
awaitable<std::vector<zds::Request>> take_snapshot(SeqPacketSocket& s) {
  std::vector<zds::Request> got;
  for (;;) {
    got.push_back(co_await next_request(s));
    co_await answer(s);
    if (got.back().kind == RequestKind::SnapshotSent) co_return got;
    REQUIRE(got.size() < 100);
  }
}

// True when nothing arrives within `wait`.
awaitable<bool> nothing_arrives(SeqPacketSocket& s, milliseconds wait = 100ms) {
  auto r = co_await s.receive(wait);
  co_return !r && r.error().kind == ErrorKind::Timeout;
}

// True when the server closed the connection (EOF) within `limit`.
awaitable<bool> closed_by_server(SeqPacketSocket& s, milliseconds limit = 2s) {
  auto r = co_await s.receive(limit);
  co_return !r && r.error().kind == ErrorKind::Closed;
}

// ---- the server under test ----

struct TestPod {
  std::string uid;
  zds::WorkloadInfo info;
  int netns = -1;  // borrowed from the test; -1: no netns (Keep)
};

struct Harness {
  asio::io_context io{1};
  test::ScratchDir dir;
  std::string path = dir.file("run/ztunnel/ztunnel.sock");  // run/ztunnel does not exist yet
  std::vector<TestPod> pods;
  std::vector<ZdsConnectionEvent> events;
  std::unique_ptr<ZdsServer> server;

  explicit Harness(ZdsServerOptions opts = fast_options()) {
    opts.path = path;
    server = std::make_unique<ZdsServer>(io.get_executor(), std::move(opts), [this] { return snapshot(); });
    server->on_connection([this](const ZdsConnectionEvent& e) { events.push_back(e); });
    auto started = server->start();
    REQUIRE_MESSAGE(started, started.error().message());
  }

  std::vector<ZdsSnapshotPod> snapshot() const {
    std::vector<ZdsSnapshotPod> out;
    for (const auto& p : pods) {
      ZdsSnapshotPod s;
      s.uid = p.uid;
      s.info = p.info;
      if (p.netns >= 0) s.netns.reset(::fcntl(p.netns, F_DUPFD_CLOEXEC, 0));
      out.push_back(std::move(s));
    }
    return out;
  }

  std::size_t count(ZdsConnectionEvent::Kind kind) const {
    std::size_t n = 0;
    for (const auto& e : events) n += e.kind == kind;
    return n;
  }

  // True once the server has exactly `n` open connections (within `limit`).
  awaitable<bool> connections_become(std::size_t n, milliseconds limit = 2s) {
    const std::function<bool()> cond = [this, n] { return server->connection_count() == n; };
    co_return co_await eventually(cond, limit);
  }

  // True once `n` events of `kind` have been seen (within `limit`).
  awaitable<bool> events_reach(ZdsConnectionEvent::Kind kind, std::size_t n, milliseconds limit = 2s) {
    const std::function<bool()> cond = [this, kind, n] { return count(kind) >= n; };
    co_return co_await eventually(cond, limit);
  }

  // A ztunnel that has said hello and acked an empty... or any snapshot; the server counts it ready.
  awaitable<SeqPacketSocket> ready_ztunnel() {
    const std::size_t ready_before = count(ZdsConnectionEvent::Kind::Ready);
    auto s = co_await connect_and_hello(path);
    co_await take_snapshot(s);
    const bool ready = co_await events_reach(ZdsConnectionEvent::Kind::Ready, ready_before + 1);
    REQUIRE(ready);
    co_return s;
  }
};

// ---- scenarios (named coroutines: GCC 12 miscompiles coroutine lambdas) ----

struct BadHelloRow {
  const char* name;
  std::string bytes;
  bool with_fd;
};

awaitable<void> replay_snapshot_in_order(Harness& h, int netns_a, int netns_c, int fds_before) {
  auto zt = co_await connect_and_hello(h.path);
  auto first = co_await next_request(zt);
  CHECK(first.kind == RequestKind::Add);
  CHECK(first.uid == "uid-a");
  CHECK(first.info == kInfo);
  CHECK(test::file_identity(first.netns.get()) == test::file_identity(netns_a));
  CHECK(co_await nothing_arrives(zt));  // the next one waits for this ack
  CHECK(h.server->ready_connection_count() == 0);
  co_await answer(zt);

  auto second = co_await next_request(zt);
  CHECK(second.kind == RequestKind::Keep);
  CHECK(second.uid == "uid-b");
  co_await answer(zt, "a nack in the snapshot is only logged");

  auto third = co_await next_request(zt);
  CHECK(third.kind == RequestKind::Add);
  CHECK(third.uid == "uid-c");
  CHECK(third.info == zds::WorkloadInfo{"c", "web", "c-sa"});
  CHECK(test::file_identity(third.netns.get()) == test::file_identity(netns_c));
  co_await answer(zt);

  auto done = co_await next_request(zt);
  CHECK(done.kind == RequestKind::SnapshotSent);
  CHECK(h.count(ZdsConnectionEvent::Kind::Ready) == 0);
  co_await answer(zt);
  CHECK(co_await h.events_reach(ZdsConnectionEvent::Kind::Ready, 1));
  CHECK(h.server->ready_connection_count() == 1);
  CHECK(h.server->connection_count() == 1);
  REQUIRE(h.events.size() == 1);
  CHECK(h.events[0].connection_id == 1);
  CHECK(h.events[0].ready_connections == 1);

  first.netns.reset();
  third.netns.reset();
  // + the two ends of the connection; the server's dups of the snapshot's netns fds are closed.
  CHECK(test::open_fd_count() == fds_before + 2);
}

awaitable<void> add_behind_replay(Harness& h, int netns_x) {
  auto zt = co_await connect_and_hello(h.path);
  auto snap_add = co_await next_request(zt);
  CHECK(snap_add.uid == "uid-a");
  auto call = co_await start_call(h.server->add("uid-x", kInfo, netns_x));
  co_await answer(zt);
  CHECK((co_await next_request(zt)).kind == RequestKind::SnapshotSent);
  CHECK_FALSE(call->has_value());
  co_await answer(zt);
  auto add = co_await next_request(zt);
  CHECK(add.kind == RequestKind::Add);
  CHECK(add.uid == "uid-x");
  CHECK(test::file_identity(add.netns.get()) == test::file_identity(netns_x));
  co_await answer(zt);
  auto r = co_await finish_call(call);
  CHECK_MESSAGE(r, r.error().message());
}

awaitable<void> add_newest_del_all(Harness& h, int netns) {
  auto old_zt = co_await h.ready_ztunnel();
  auto new_zt = co_await h.ready_ztunnel();
  CHECK(h.server->connection_count() == 2);
  CHECK(h.server->ready_connection_count() == 2);

  const int fds_before = test::open_fd_count();
  auto call = co_await start_call(h.server->add("uid-1", kInfo, netns));
  {
    auto add = co_await next_request(new_zt);
    CHECK(add.kind == RequestKind::Add);
    CHECK(add.uid == "uid-1");
    CHECK(test::file_identity(add.netns.get()) == test::file_identity(netns));
    co_await answer(new_zt);
  }
  auto added = co_await finish_call(call);
  CHECK_MESSAGE(added, added.error().message());
  CHECK(co_await nothing_arrives(old_zt));
  CHECK(test::open_fd_count() == fds_before);  // the server closed its dup of the netns

  auto del_call = co_await start_call(h.server->del("uid-1"));
  const std::array<SeqPacketSocket*, 2> both = {&old_zt, &new_zt};
  for (auto* zt : both) {
    auto del = co_await next_request(*zt);
    CHECK(del.kind == RequestKind::Del);
    CHECK(del.uid == "uid-1");
    co_await answer(*zt);
  }
  auto deleted = co_await finish_call(del_call);
  CHECK_MESSAGE(deleted, deleted.error().message());

  new_zt.close();
  CHECK(co_await h.connections_become(1));
  CHECK(h.count(ZdsConnectionEvent::Kind::Gone) == 1);
  CHECK(h.events.back().connection_id == 2);
  CHECK(h.events.back().ready_connections == 1);
  auto call2 = co_await start_call(h.server->add("uid-2", kInfo, netns));
  auto add2 = co_await next_request(old_zt);
  CHECK(add2.uid == "uid-2");
  co_await answer(old_zt);
  auto added2 = co_await finish_call(call2);
  CHECK_MESSAGE(added2, added2.error().message());
}

awaitable<void> nack_reason(Harness& h, int netns) {
  auto zt = co_await h.ready_ztunnel();
  auto call = co_await start_call(h.server->add("uid-1", kInfo, netns));
  CHECK((co_await next_request(zt)).uid == "uid-1");
  co_await answer(zt, "failure to start proxy: address in use");
  auto r = co_await finish_call(call);
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == ErrorKind::InvalidArgument);
  CHECK(r.error().context.find("failure to start proxy: address in use") != std::string::npos);
  CHECK(r.error().context.find("uid-1") != std::string::npos);

  auto del_call = co_await start_call(h.server->del("uid-1"));
  CHECK((co_await next_request(zt)).kind == RequestKind::Del);
  co_await answer(zt, "no such pod");
  auto d = co_await finish_call(del_call);
  REQUIRE_FALSE(d);
  CHECK(d.error().context.find("no such pod") != std::string::npos);
  CHECK(h.server->connection_count() == 1);
}

awaitable<void> late_ack_discarded(Harness& h, int netns) {
  auto zt = co_await h.ready_ztunnel();
  const auto start = std::chrono::steady_clock::now();
  auto call = co_await start_call(h.server->add("uid-1", kInfo, netns));
  CHECK((co_await next_request(zt)).uid == "uid-1");
  auto r = co_await finish_call(call);
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == ErrorKind::Timeout);
  CHECK(std::chrono::steady_clock::now() - start >= 300ms);
  CHECK(h.server->connection_count() == 1);
  CHECK(h.count(ZdsConnectionEvent::Kind::Gone) == 0);

  co_await answer(zt, "late nack for uid-1");  // the late answer
  auto call2 = co_await start_call(h.server->add("uid-2", kInfo, netns));
  CHECK((co_await next_request(zt)).uid == "uid-2");
  co_await sleep_for(50ms);
  CHECK_FALSE(call2->has_value());  // the late nack was discarded, not taken as uid-2's answer
  co_await answer(zt);
  auto r2 = co_await finish_call(call2);
  CHECK_MESSAGE(r2, r2.error().message());
}

awaitable<void> hung_ztunnel_dropped(Harness& h) {
  auto zt = co_await h.ready_ztunnel();
  for (unsigned i = 0; i <= ZdsServer::kMaxLateAcks; ++i) {
    auto r = co_await h.server->del("uid-" + std::to_string(i));
    if (i < ZdsServer::kMaxLateAcks) {
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::Timeout);
      CHECK(h.server->connection_count() == 1);
    }
    (void)co_await next_request(zt);
  }
  CHECK(co_await h.connections_become(0));
  CHECK(co_await closed_by_server(zt));
}

awaitable<void> keepalive_notices_death(Harness& h) {
  auto zt = co_await h.ready_ztunnel();
  CHECK(h.server->connection_count() == 1);
  zt.close();
  CHECK(co_await h.events_reach(ZdsConnectionEvent::Kind::Gone, 1, 1s));
  CHECK(h.server->connection_count() == 0);
  CHECK(h.events.back().connections == 0);
  CHECK(h.events.back().ready_connections == 0);
}

awaitable<void> keepalive_keeps_live(Harness& h) {
  auto zt = co_await h.ready_ztunnel();
  co_await sleep_for(300ms);  // six probes
  CHECK(h.server->connection_count() == 1);
  CHECK(co_await nothing_arrives(zt, 10ms));
}

awaitable<void> unsolicited_data_dropped(Harness& h) {
  auto zt = co_await h.ready_ztunnel();
  co_await answer(zt);  // an ack nobody asked for
  CHECK(co_await closed_by_server(zt));
  CHECK(co_await h.connections_become(0));
  CHECK(h.count(ZdsConnectionEvent::Kind::Gone) == 1);
}

awaitable<void> bad_hellos(Harness& h, std::vector<BadHelloRow> rows, int netns) {
  auto good = co_await h.ready_ztunnel();
  for (const auto& row : rows) {
    auto zt = co_await connect_ztunnel(h.path);
    std::vector<int> fds;
    if (row.with_fd) fds.push_back(netns);
    auto sent = co_await zt.send(row.bytes, fds);
    REQUIRE_MESSAGE(sent, row.name);
    CHECK_MESSAGE(co_await closed_by_server(zt), row.name);
  }
  CHECK(co_await h.connections_become(1));
  // Connections that never got ready still report when they go.
  CHECK(h.count(ZdsConnectionEvent::Kind::Gone) == rows.size());
  CHECK(co_await nothing_arrives(good, 10ms));
}

awaitable<void> hello_timeout(Harness& h) {
  auto zt = co_await connect_ztunnel(h.path);
  const auto start = std::chrono::steady_clock::now();
  CHECK(co_await closed_by_server(zt));
  CHECK(std::chrono::steady_clock::now() - start >= 250ms);
}

awaitable<void> unanswered_snapshot(Harness& h) {
  auto zt = co_await connect_and_hello(h.path);
  CHECK((co_await next_request(zt)).uid == "uid-a");
  CHECK(co_await closed_by_server(zt));
  CHECK(h.count(ZdsConnectionEvent::Kind::Ready) == 0);
  auto again = co_await connect_and_hello(h.path);
  auto snap = co_await take_snapshot(again);
  CHECK(snap.size() == 2);
}

awaitable<void> queued_on_dying_connection(Harness& h, int netns) {
  auto zt = co_await h.ready_ztunnel();
  auto first = co_await start_call(h.server->add("uid-1", kInfo, netns));
  auto queued_add = co_await start_call(h.server->add("uid-2", kInfo, netns));
  auto queued_del = co_await start_call(h.server->del("uid-3"));
  CHECK((co_await next_request(zt)).uid == "uid-1");
  zt.close();
  auto r1 = co_await finish_call(first);
  REQUIRE_FALSE(r1);
  CHECK(r1.error().kind == ErrorKind::Closed);
  auto r2 = co_await finish_call(queued_add);
  REQUIRE_FALSE(r2);
  CHECK(r2.error().kind == ErrorKind::Closed);
  auto r3 = co_await finish_call(queued_del);
  CHECK_MESSAGE(r3, r3.error().message());
}

awaitable<void> connection_limit(Harness& h) {
  auto a = co_await h.ready_ztunnel();
  auto b = co_await h.ready_ztunnel();
  auto c = co_await connect_ztunnel(h.path);
  CHECK(co_await closed_by_server(c));
  CHECK(h.server->connection_count() == 2);
  a.close();
  CHECK(co_await h.connections_become(1));
  auto d = co_await h.ready_ztunnel();  // room again
  CHECK(h.server->connection_count() == 2);
}

awaitable<void> accept_rate_limit(Harness& h) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<SeqPacketSocket> zts;
  for (int i = 0; i < 4; ++i) zts.push_back(co_await connect_and_hello(h.path));
  CHECK(co_await h.connections_become(4));
  CHECK(std::chrono::steady_clock::now() - start >= 280ms);  // 3 gaps of 100 ms, some slack
}

awaitable<void> stop_cancels(Harness& h, int netns) {
  auto zt = co_await h.ready_ztunnel();
  auto in_flight = co_await start_call(h.server->add("uid-1", kInfo, netns));
  auto queued = co_await start_call(h.server->add("uid-2", kInfo, netns));
  CHECK((co_await next_request(zt)).uid == "uid-1");
  const std::size_t events_before = h.events.size();
  h.server->stop();
  CHECK(h.server->connection_count() == 0);
  auto r1 = co_await finish_call(in_flight);
  REQUIRE_FALSE(r1);
  CHECK(r1.error().kind == ErrorKind::Cancelled);
  auto r2 = co_await finish_call(queued);
  REQUIRE_FALSE(r2);
  CHECK(r2.error().kind == ErrorKind::Cancelled);
  CHECK(co_await closed_by_server(zt));
  CHECK(h.events.size() == events_before);  // no events after stop()
  auto late = co_await h.server->add("uid-3", kInfo, netns);
  REQUIRE_FALSE(late);
  CHECK(late.error().kind == ErrorKind::Cancelled);
  auto refused = SeqPacketSocket::connect(co_await asio::this_coro::executor, h.path);
  CHECK_FALSE(refused);
}
}  // namespace

TEST_SUITE("cni/zds/zds_server") {
  TEST_CASE("defaults are the reference's: 5 s deadlines and keepalive, 5 accepts/s, the istio socket path") {
    const ZdsServerOptions o;
    CHECK(o.path == "/var/run/ztunnel/ztunnel.sock");
    CHECK(o.hello_timeout == 5s);
    CHECK(o.ack_timeout == 5s);
    CHECK(o.keepalive_interval == 5s);
    CHECK(o.accepts_per_second == 5);
    CHECK(o.max_connections == 16);
  }

  TEST_CASE("start creates the parent directory; stop removes the socket file (only ours)") {
    Harness h;
    struct stat st{};
    REQUIRE(::lstat(h.path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    h.server->stop();
    CHECK(::lstat(h.path.c_str(), &st) != 0);
    h.server->stop();  // idempotent

    // A second server started on the path replaced the first one's file: stopping the first keeps it.
    asio::io_context io;
    ZdsServerOptions o = fast_options();
    o.path = h.dir.file("shared.sock");
    ZdsServer first(io.get_executor(), o, nullptr);
    REQUIRE(first.start());
    ZdsServer second(io.get_executor(), o, nullptr);
    REQUIRE(second.start());
    first.stop();
    CHECK(::lstat(o.path.c_str(), &st) == 0);
    second.stop();
    CHECK(::lstat(o.path.c_str(), &st) != 0);
  }

  TEST_CASE("start refuses a path holding a regular file") {
    asio::io_context io;
    test::ScratchDir dir;
    ZdsServerOptions o = fast_options();
    o.path = dir.file("ztunnel.sock");
    { auto f = test::open_scratch_file(o.path); }
    ZdsServer server(io.get_executor(), o, nullptr);
    auto r = server.start();
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::InvalidArgument);
  }

  TEST_CASE("snapshot replay: Add with the pod's netns, Keep without, in order, one at a time, then SnapshotSent") {
    Harness h;
    auto netns_a = test::open_scratch_file(h.dir.file("netns-a"));
    auto netns_c = test::open_scratch_file(h.dir.file("netns-c"));
    h.pods = {{"uid-a", kInfo, netns_a.get()},
              {"uid-b", {"b", "shop", "b-sa"}, -1},  // no netns: Keep
              {"uid-c", {"c", "web", "c-sa"}, netns_c.get()}};
    const int fds_before = test::open_fd_count();

    test::run_coro(h.io, replay_snapshot_in_order(h, netns_a.get(), netns_c.get(), fds_before));
  }

  TEST_CASE("add waits behind a snapshot still being replayed") {
    Harness h;
    auto netns_a = test::open_scratch_file(h.dir.file("netns-a"));
    auto netns_x = test::open_scratch_file(h.dir.file("netns-x"));
    h.pods = {{"uid-a", kInfo, netns_a.get()}};
    test::run_coro(h.io, add_behind_replay(h, netns_x.get()));
  }

  TEST_CASE("add goes to the newest connection only, del to all; when the newest goes, the previous one gets adds") {
    Harness h;
    auto netns = test::open_scratch_file(h.dir.file("netns"));
    test::run_coro(h.io, add_newest_del_all(h, netns.get()));
  }

  TEST_CASE("with no connection add is NotFound \"no ztunnel connection\" and del is ok") {
    Harness h;
    auto netns = test::open_scratch_file(h.dir.file("netns"));
    const int fds_before = test::open_fd_count();
    auto added = test::run_coro(h.io, h.server->add("uid-1", kInfo, netns.get()));
    REQUIRE_FALSE(added);
    CHECK(added.error().kind == ErrorKind::NotFound);
    CHECK(added.error().context.find("no ztunnel connection") != std::string::npos);
    CHECK(test::open_fd_count() == fds_before);
    CHECK(test::run_coro(h.io, h.server->del("uid-1")));
  }

  TEST_CASE("bad arguments are refused before anything is sent") {
    Harness h;
    auto no_uid = test::run_coro(h.io, h.server->add("", kInfo, 0));
    REQUIRE_FALSE(no_uid);
    CHECK(no_uid.error().kind == ErrorKind::InvalidArgument);
    auto no_fd = test::run_coro(h.io, h.server->add("uid-1", kInfo, -1));
    REQUIRE_FALSE(no_fd);
    CHECK(no_fd.error().kind == ErrorKind::InvalidArgument);
    auto huge = test::run_coro(h.io, h.server->add("uid-1", zds::WorkloadInfo{std::string(2000, 'n'), "ns", "sa"}, 0));
    REQUIRE_FALSE(huge);
    CHECK(huge.error().kind == ErrorKind::InvalidArgument);
    auto del_no_uid = test::run_coro(h.io, h.server->del(""));
    REQUIRE_FALSE(del_no_uid);
    CHECK(del_no_uid.error().kind == ErrorKind::InvalidArgument);
  }

  TEST_CASE("a NACK comes back as an error carrying ztunnel's reason; the connection stays") {
    Harness h;
    auto netns = test::open_scratch_file(h.dir.file("netns"));
    test::run_coro(h.io, nack_reason(h, netns.get()));
  }

  TEST_CASE("ack timeout: Timeout, the connection is kept, and the late ack is not taken for the next one") {
    ZdsServerOptions o = fast_options();
    o.keepalive_interval = 10s;  // the next request, not the keepalive, must meet the late ack
    Harness h(o);
    auto netns = test::open_scratch_file(h.dir.file("netns"));
    test::run_coro(h.io, late_ack_discarded(h, netns.get()));
  }

  TEST_CASE("a ztunnel that stops answering is dropped after kMaxLateAcks timeouts in a row") {
    ZdsServerOptions o = fast_options();
    o.ack_timeout = 50ms;
    o.keepalive_interval = 10s;
    Harness h(o);
    test::run_coro(h.io, hung_ztunnel_dropped(h));
  }

  TEST_CASE("keepalive: a ztunnel that went away is noticed while idle") {
    Harness h;
    test::run_coro(h.io, keepalive_notices_death(h));
  }

  TEST_CASE("keepalive: a ztunnel that stays is kept across many intervals") {
    Harness h;
    test::run_coro(h.io, keepalive_keeps_live(h));
  }

  TEST_CASE("a ztunnel sending unsolicited data is dropped") {
    Harness h;
    test::run_coro(h.io, unsolicited_data_dropped(h));
  }

  TEST_CASE("bad hello closes that connection only") {
    Harness h;
    auto netns = test::open_scratch_file(h.dir.file("netns"));
    const std::vector<BadHelloRow> rows = {
        {"garbage", std::string("\xff\xff", 2), false},
        {"a request instead of a hello", zds::encode_keep("uid-1"), false},
        {"hello with an fd", zds::encode_hello(), true},
    };
    test::run_coro(h.io, bad_hellos(h, rows, netns.get()));
  }

  TEST_CASE("no hello within hello_timeout closes the connection") {
    Harness h;
    test::run_coro(h.io, hello_timeout(h));
  }

  TEST_CASE("an unanswered snapshot request closes the connection (ztunnel reconnects for a fresh one)") {
    Harness h;
    auto netns = test::open_scratch_file(h.dir.file("netns"));
    h.pods = {{"uid-a", kInfo, netns.get()}};
    test::run_coro(h.io, unanswered_snapshot(h));
  }

  TEST_CASE("an add queued on a connection that goes away fails with Closed; a queued del is done") {
    ZdsServerOptions o = fast_options();
    o.keepalive_interval = 10s;
    Harness h(o);
    auto netns = test::open_scratch_file(h.dir.file("netns"));
    test::run_coro(h.io, queued_on_dying_connection(h, netns.get()));
  }

  TEST_CASE("at most max_connections: one more is closed at once") {
    ZdsServerOptions o = fast_options();
    o.max_connections = 2;
    Harness h(o);
    test::run_coro(h.io, connection_limit(h));
  }

  TEST_CASE("accepts are rate limited (accepts_per_second)") {
    ZdsServerOptions o = fast_options();
    o.accepts_per_second = 10;  // 100 ms apart
    o.ack_timeout = 5s;         // the fake ztunnels here never ack SnapshotSent
    Harness h(o);
    test::run_coro(h.io, accept_rate_limit(h));
  }

  TEST_CASE("stop: requests in flight and queued fail with Cancelled, ztunnels see EOF, later calls are refused") {
    Harness h;
    auto netns = test::open_scratch_file(h.dir.file("netns"));
    test::run_coro(h.io, stop_cancels(h, netns.get()));
  }
}
