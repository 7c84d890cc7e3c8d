#include "cni/zds/zds_server.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <exception>
#include <filesystem>
#include <optional>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/zds/seqpacket.h"

namespace ambient::cni {

namespace asio = boost::asio;
using asio::awaitable;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr milliseconds kAcceptBackoff{100};  // after EMFILE and the like: don't spin

// One request to one connection, shared by the caller (waiting for `outcome`) and the connection's queue.
struct PendingRequest {
  explicit PendingRequest(const asio::any_io_executor& ex) : done_signal(ex, Clock::time_point::max()) {}

  std::string what;      // "add <uid>", "del <uid>": for logs and errors
  std::string bytes;     // the encoded WorkloadRequest, <= kMaxPacket
  net::UniqueFd netns;   // add only
  bool is_del = false;   // a del to a connection that goes away is done, not failed
  std::optional<Result<void>> outcome;
  asio::steady_timer done_signal;  // cancelled once `outcome` is set

  void finish(Result<void> r) {
    if (outcome) return;
    outcome = std::move(r);
    done_signal.cancel();
  }
};
using PendingPtr = std::shared_ptr<PendingRequest>;

awaitable<Result<void>> wait_done(PendingPtr p) {
  while (!p->outcome) co_await p->done_signal.async_wait(kUseTuple);
  co_return *p->outcome;
}

enum class ConnState : std::uint8_t {
  AwaitingHello,  // accepted; nothing sent yet; requests queue
  Replaying,      // hello read; snapshot requests in flight; requests queue
  Ready,          // SnapshotSent acked; serving the queue
  Closed,         // out of the connection list; queue failed
};

struct Connection {
  Connection(std::uint64_t id_, zds::SeqPacketSocket s)
      : id(id_), socket(std::move(s)), wake(socket.get_executor(), Clock::time_point::max()) {}

  std::uint64_t id;
  zds::SeqPacketSocket socket;
  ConnState state = ConnState::AwaitingHello;
  std::deque<PendingPtr> queue;  // not yet sent; bounded by max_queued_requests
  asio::steady_timer wake;       // the serve loop's idle wait; cancelled by enqueue and stop
  unsigned late_acks_owed = 0;   // requests that timed out: their acks arrive before the next one's
  bool closing = false;          // stop() was called
};
using ConnectionPtr = std::shared_ptr<Connection>;

// What one request/ack round trip gave: the ack's error text ("" = ACK), or why not. `usable` is false when
// the connection cannot carry another request (closed, protocol error, hung).
struct Exchange {
  Result<std::string> ack;
  bool usable = true;
};

}  // namespace

struct ZdsServer::State {
  asio::any_io_executor executor;
  ZdsServerOptions opts;
  ZdsSnapshotProvider snapshot;
  ZdsConnectionListener listener_cb;
  std::optional<zds::SeqPacketListener> listener;
  std::optional<asio::steady_timer> accept_pause;  // rate limit; cancelled by stop()
  std::vector<ConnectionPtr> conns;  // open connections in accept order: back() is the newest
  std::uint64_t next_id = 1;
  dev_t socket_dev = 0;  // the socket file we bound: stop() removes only that one
  ino_t socket_ino = 0;
  bool started = false;
  bool stopped = false;

  std::size_t ready_count() const {
    return static_cast<std::size_t>(
        std::count_if(conns.begin(), conns.end(), [](const ConnectionPtr& c) { return c->state == ConnState::Ready; }));
  }

  void emit(ZdsConnectionEvent::Kind kind, std::uint64_t id) {
    if (stopped || !listener_cb) return;
    ZdsConnectionEvent ev;
    ev.kind = kind;
    ev.connection_id = id;
    ev.connections = conns.size();
    ev.ready_connections = ready_count();
    listener_cb(ev);
  }
};

namespace {

using State = ZdsServer::State;

milliseconds remaining_until(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
  return std::max(left, milliseconds(0));
}

Result<void> enqueue(State& st, Connection& c, PendingPtr p) {
  if (c.queue.size() >= st.opts.max_queued_requests)
    return errorf(ErrorKind::ResourceExhausted, "zds connection #{}: {} requests already queued, refusing {}", c.id,
                  c.queue.size(), p->what);
  c.queue.push_back(std::move(p));
  c.wake.cancel();
  return ok();
}

// Sends one request and reads its ack, both within ack_timeout. Late acks of earlier timed-out requests are
// read and discarded first (ztunnel answers in order).
awaitable<Exchange> exchange(State& st, Connection& c, const std::string& bytes, int netns_fd) {
  using namespace asio::experimental::awaitable_operators;
  const auto deadline = Clock::now() + st.opts.ack_timeout;
  std::vector<int> fds;
  if (netns_fd >= 0) fds.push_back(netns_fd);
  {
    asio::steady_timer write_deadline(c.socket.get_executor(), deadline);
    auto sent = co_await (c.socket.send(bytes, std::move(fds)) || write_deadline.async_wait(kUseTuple));
    if (sent.index() == 1)  // nothing went out (a packet is sent whole or not at all): no ack owed
      co_return Exchange{errorf(ErrorKind::Timeout, "zds connection #{}: send not possible within {} ms", c.id,
                                st.opts.ack_timeout.count()),
                         true};
    if (auto& r = std::get<0>(sent); !r) co_return Exchange{r.error(), false};
  }
  for (;;) {
    auto packet = co_await c.socket.receive(remaining_until(deadline));
    if (!packet) {
      if (packet.error().kind != ErrorKind::Timeout) co_return Exchange{std::move(packet).error(), false};
      ++c.late_acks_owed;
      co_return Exchange{errorf(ErrorKind::Timeout, "zds connection #{}: no ack within {} ms", c.id,
                                st.opts.ack_timeout.count()),
                         c.late_acks_owed <= ZdsServer::kMaxLateAcks};
    }
    if (!packet->fds.empty())
      co_return Exchange{errorf(ErrorKind::Parse, "zds connection #{}: ztunnel sent {} fds with its ack", c.id,
                                packet->fds.size()),
                         false};
    auto ack = zds::decode_ack(packet->bytes);
    if (!ack) co_return Exchange{std::move(ack).error(), false};
    if (c.late_acks_owed > 0) {
      --c.late_acks_owed;
      spdlog::debug("zds connection #{}: discarded a late ack ('{}')", c.id, *ack);
      continue;
    }
    co_return Exchange{std::move(*ack), true};
  }
}

// Idle probe (step 3), without waiting: ok while the connection is healthy. EOF or an error ends it; data
// is only legitimate as the late ack of a timed-out request (discarded), anything else is a protocol error.
awaitable<Result<void>> probe_idle(Connection& c) {
  for (;;) {
    auto packet = co_await c.socket.receive(milliseconds(0));
    if (!packet) {
      if (packet.error().kind == ErrorKind::Timeout) co_return ok();  // nothing waiting: alive
      co_return std::move(packet).error();
    }
    if (c.late_acks_owed == 0 || !packet->fds.empty() || !zds::decode_ack(packet->bytes))
      co_return errorf(ErrorKind::Parse, "protocol error: ztunnel sent {} unsolicited bytes ({} fds)",
                       packet->bytes.size(), packet->fds.size());
    --c.late_acks_owed;
    spdlog::debug("zds connection #{}: discarded a late ack while idle", c.id);
  }
}

// Step 1: ZdsHello{V1}, nothing else, within hello_timeout.
awaitable<Result<void>> read_hello(State& st, Connection& c) {
  auto hello = co_await c.socket.receive(st.opts.hello_timeout);
  if (!hello) co_return errorf(hello.error().kind, "no hello: {}", hello.error());
  if (!hello->fds.empty()) co_return errorf(ErrorKind::Parse, "bad hello: carried {} fds", hello->fds.size());
  if (auto h = zds::decode_hello(hello->bytes); !h) co_return errorf(ErrorKind::Parse, "bad hello: {}", h.error());
  co_return ok();
}

// Step 2: Add (or Keep) for every pod of the snapshot, then SnapshotSent. NACKs are logged, not fatal.
// The snapshot's fds live only as long as this frame.
awaitable<Result<void>> replay_snapshot(State& st, Connection& c) {
  std::vector<ZdsSnapshotPod> pods;
  if (st.snapshot) pods = st.snapshot();
  spdlog::info("zds connection #{}: ztunnel said hello (V1); replaying {} pods", c.id, pods.size());
  for (const auto& pod : pods) {
    const bool has_netns = pod.netns.valid();
    const std::string bytes = has_netns ? zds::encode_add(pod.uid, pod.info) : zds::encode_keep(pod.uid);
    auto reply = co_await exchange(st, c, bytes, pod.netns.get());
    if (!reply.ack)
      co_return errorf(reply.ack.error().kind, "snapshot {} {}: {}", has_netns ? "add" : "keep", pod.uid,
                       reply.ack.error());
    if (!reply.ack->empty()) spdlog::warn("zds connection #{}: snapshot {} nacked: {}", c.id, pod.uid, *reply.ack);
  }
  auto reply = co_await exchange(st, c, zds::encode_snapshot_sent(), -1);
  if (!reply.ack) co_return errorf(reply.ack.error().kind, "snapshot_sent: {}", reply.ack.error());
  if (!reply.ack->empty()) spdlog::warn("zds connection #{}: snapshot_sent nacked: {}", c.id, *reply.ack);
  co_return ok();
}

// The connection's life: hello, snapshot, then the request queue (step 3). Returns why it ended.
awaitable<std::string> run_connection(State& st, Connection& c) {
  if (auto hello = co_await read_hello(st, c); !hello) {
    if (!c.closing) spdlog::warn("zds connection #{}: {}", c.id, hello.error());
    co_return hello.error().context;
  }
  if (c.closing || st.stopped) co_return "stopped";
  c.state = ConnState::Replaying;

  if (auto replayed = co_await replay_snapshot(st, c); !replayed) co_return replayed.error().context;
  c.state = ConnState::Ready;
  spdlog::info("zds connection #{}: snapshot acked, ready", c.id);
  st.emit(ZdsConnectionEvent::Kind::Ready, c.id);

  for (;;) {
    if (c.closing) co_return "stopped";
    if (c.queue.empty()) {
      c.wake.expires_after(st.opts.keepalive_interval);
      auto [ec] = co_await c.wake.async_wait(kUseTuple);
      if (c.closing) co_return "stopped";
      if (ec || !c.queue.empty()) continue;  // woken by enqueue
      if (auto alive = co_await probe_idle(c); !alive) co_return fmt::format("keepalive: {}", alive.error());
      continue;
    }
    PendingPtr req = std::move(c.queue.front());
    c.queue.pop_front();
    auto reply = co_await exchange(st, c, req->bytes, req->netns.get());
    req->netns.reset();  // ztunnel has its own copy now (or never will)
    if (!reply.ack) {
      spdlog::warn("zds connection #{}: {}: {}", c.id, req->what, reply.ack.error());
      req->finish(reply.ack.error());
      if (!reply.usable) co_return fmt::format("{}: {}", req->what, reply.ack.error());
      continue;
    }
    if (!reply.ack->empty()) {
      spdlog::warn("zds connection #{}: ztunnel nacked {}: {}", c.id, req->what, *reply.ack);
      req->finish(errorf(ErrorKind::InvalidArgument, "ztunnel nacked {}: {}", req->what, *reply.ack));
      continue;
    }
    req->finish(ok());
  }
}

// Takes a finished connection out of the list, fails what waits on it, tells the listener.
void retire_connection(State& st, const ConnectionPtr& c, const std::string& reason) {
  const bool listed = std::erase(st.conns, c) > 0;
  c->state = ConnState::Closed;
  c->socket.close();
  for (auto& p : c->queue) {
    if (st.stopped) p->finish(errorf(ErrorKind::Cancelled, "zds server stopped before {}", p->what));
    else if (p->is_del) p->finish(ok());
    else p->finish(errorf(ErrorKind::Closed, "zds connection #{} went away before {}: {}", c->id, p->what, reason));
  }
  c->queue.clear();
  if (!listed || st.stopped) return;
  spdlog::info("zds connection #{} closed: {} ({} left)", c->id, reason, st.conns.size());
  st.emit(ZdsConnectionEvent::Kind::Gone, c->id);
}

awaitable<void> serve_connection(std::shared_ptr<State> st, ConnectionPtr c) {
  const std::string reason = co_await run_connection(*st, *c);
  retire_connection(*st, c, reason);
}

void log_unexpected(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("zds server: unexpected exception: {}", ex.what());
  } catch (...) {
    spdlog::error("zds server: unexpected exception");
  }
}

awaitable<void> pause(asio::steady_timer& t, milliseconds d) {
  t.expires_after(d);
  co_await t.async_wait(kUseTuple);
}

awaitable<void> accept_loop(std::shared_ptr<State> st) {
  const milliseconds spacing(1000 / std::max(1u, st->opts.accepts_per_second));
  for (;;) {
    if (st->stopped) co_return;
    auto sock = co_await st->listener->accept();
    if (st->stopped) co_return;
    if (!sock) {
      spdlog::warn("zds server: {}", sock.error());
      co_await pause(*st->accept_pause, kAcceptBackoff);
      continue;
    }
    const std::uint64_t id = st->next_id++;
    if (st->conns.size() >= st->opts.max_connections) {
      spdlog::warn("zds server: refusing connection #{}: already {} connections", id, st->conns.size());
      sock->close();
    } else {
      auto c = std::make_shared<Connection>(id, std::move(*sock));
      st->conns.push_back(c);
      spdlog::info("zds server: ztunnel connection #{} accepted ({} open)", id, st->conns.size());
      asio::co_spawn(st->executor, serve_connection(st, std::move(c)), log_unexpected);
    }
    co_await pause(*st->accept_pause, spacing);  // rate limit: at most accepts_per_second
  }
}

Error join_errors(const std::vector<Error>& errors) {
  Error joined{errors.front().kind, "", 0};
  for (const auto& e : errors) {
    if (!joined.context.empty()) joined.context += "; ";
    joined.context += e.message();
  }
  return joined;
}

}  // namespace

ZdsServer::ZdsServer(asio::any_io_executor executor, ZdsServerOptions options, ZdsSnapshotProvider snapshot)
    : state_(std::make_shared<State>()) {
  state_->executor = std::move(executor);
  state_->opts = std::move(options);
  state_->snapshot = std::move(snapshot);
}

ZdsServer::~ZdsServer() { stop(); }

void ZdsServer::on_connection(ZdsConnectionListener listener) { state_->listener_cb = std::move(listener); }

Result<void> ZdsServer::start() {
  State& st = *state_;
  if (st.stopped) return errorf(ErrorKind::Cancelled, "zds server: start() after stop()");
  if (st.started) return errorf(ErrorKind::InvalidArgument, "zds server: already started on {}", st.opts.path);
  const std::filesystem::path parent = std::filesystem::path(st.opts.path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) return Error{ErrorKind::Io, fmt::format("create {}: {}", parent.string(), ec.message()), ec.value()};
  }
  auto listener = zds::SeqPacketListener::listen(st.executor, st.opts.path, st.opts.socket_mode);
  if (!listener) return std::move(listener).error();
  struct stat sb{};
  if (::lstat(st.opts.path.c_str(), &sb) == 0) {
    st.socket_dev = sb.st_dev;
    st.socket_ino = sb.st_ino;
  }
  st.listener.emplace(std::move(*listener));
  st.accept_pause.emplace(st.executor);
  st.started = true;
  spdlog::info("zds server: listening on {}", st.opts.path);
  asio::co_spawn(st.executor, accept_loop(state_), log_unexpected);
  return ok();
}

void ZdsServer::stop() {
  State& st = *state_;
  if (st.stopped) return;
  st.stopped = true;
  if (st.accept_pause) st.accept_pause->cancel();
  if (st.listener) {
    st.listener->close();
    // Another agent may have replaced the file meanwhile (upgrade): remove only the one we bound.
    struct stat sb{};
    if (::lstat(st.opts.path.c_str(), &sb) == 0 && sb.st_dev == st.socket_dev && sb.st_ino == st.socket_ino)
      ::unlink(st.opts.path.c_str());
  }
  auto conns = std::exchange(st.conns, {});
  for (auto& c : conns) {
    c->closing = true;
    c->socket.close();  // the request in flight fails with Cancelled
    c->wake.cancel();
    for (auto& p : c->queue) p->finish(errorf(ErrorKind::Cancelled, "zds server stopped before {}", p->what));
    c->queue.clear();
  }
  if (st.started) spdlog::info("zds server: stopped ({} connections closed)", conns.size());
}

awaitable<Result<void>> ZdsServer::add(std::string uid, zds::WorkloadInfo info, int netns_fd) {
  std::shared_ptr<State> st = state_;  // before any suspension: the ZdsServer may go away meanwhile
  if (uid.empty()) co_return errorf(ErrorKind::InvalidArgument, "zds add: empty uid");
  if (netns_fd < 0) co_return errorf(ErrorKind::InvalidArgument, "zds add {}: no netns fd", uid);
  auto p = std::make_shared<PendingRequest>(st->executor);
  p->what = "add " + uid;
  p->bytes = zds::encode_add(uid, info);
  if (p->bytes.size() > zds::kMaxPacket)
    co_return errorf(ErrorKind::InvalidArgument, "zds add {}: request of {} bytes exceeds {}", uid, p->bytes.size(),
                     zds::kMaxPacket);
  p->netns.reset(::fcntl(netns_fd, F_DUPFD_CLOEXEC, 0));
  if (!p->netns.valid()) co_return Error{ErrorKind::Io, fmt::format("zds add {}: dup netns fd", uid), errno};
  if (st->stopped) co_return errorf(ErrorKind::Cancelled, "zds add {}: server stopped", uid);
  if (st->conns.empty()) co_return errorf(ErrorKind::NotFound, "no ztunnel connection (add {})", uid);
  if (auto q = enqueue(*st, *st->conns.back(), p); !q) co_return std::move(q).error();
  co_return co_await wait_done(p);
}

awaitable<Result<void>> ZdsServer::del(std::string uid) {
  std::shared_ptr<State> st = state_;
  if (uid.empty()) co_return errorf(ErrorKind::InvalidArgument, "zds del: empty uid");
  if (st->stopped) co_return errorf(ErrorKind::Cancelled, "zds del {}: server stopped", uid);
  const std::string bytes = zds::encode_del(uid);
  std::vector<Error> errors;
  std::vector<PendingPtr> sent;
  for (auto& c : st->conns) {
    auto p = std::make_shared<PendingRequest>(st->executor);
    p->what = "del " + uid;
    p->bytes = bytes;
    p->is_del = true;
    if (auto q = enqueue(*st, *c, p); !q) errors.push_back(std::move(q).error());
    else sent.push_back(std::move(p));
  }
  for (auto& p : sent) {  // all connections work concurrently; waiting in order costs nothing
    auto r = co_await wait_done(p);
    if (!r && r.error().kind != ErrorKind::Closed) errors.push_back(std::move(r).error());
  }
  if (errors.empty()) co_return ok();
  co_return join_errors(errors);
}

std::size_t ZdsServer::connection_count() const noexcept { return state_->conns.size(); }

std::size_t ZdsServer::ready_connection_count() const noexcept { return state_->ready_count(); }

const std::string& ZdsServer::path() const noexcept { return state_->opts.path; }

}  // namespace ambient::cni
