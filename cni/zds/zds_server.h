#pragma once
// ZdsServer: the node agent's side of ZDS (proto/zds.proto, reference cni-charts.md 4). The agent listens on
// a SOCK_SEQPACKET socket; every ztunnel connects, says hello, receives the agent's snapshot, then the
// incremental adds and dels.
//
// Per connection, in order:
//  1. ZdsHello within hello_timeout (5 s); anything else (garbage, fds, wrong version, EOF) closes it.
//  2. Snapshot replay: the SnapshotProvider is called once; for each pod, in the order given, Add + netns fd
//     (or Keep when the pod has no fd), then SnapshotSent. Each request waits for its ack (ack_timeout, 5 s).
//     A NACK is logged and the replay goes on (as istio-cni does); a timeout or transport error closes the
//     connection (ztunnel reconnects and gets a fresh snapshot). After SnapshotSent is acked the connection
//     is ready: the on_connection event fires.
//  3. Incremental requests, strictly one outstanding at a time; the rest wait in a per-connection queue
//     (max_queued_requests). While idle, every keepalive_interval the socket is probed without waiting: EOF
//     or an error drops the connection, data is a protocol error (ztunnel never speaks unasked) and drops it.
//
// Routing (what makes ztunnel's surge upgrade work):
//  - add() goes to the newest open connection only. If that one is still in hello or replay, the add waits
//    in its queue behind the snapshot. When the newest goes away, the previous one becomes the newest.
//  - del() goes to every open connection.
//
// Ack timeouts: a timed-out request fails with Timeout but the connection is kept (istio-cni does the same).
// ztunnel answers every request exactly once and in order, so the next ack to arrive is the late one: it is
// discarded, never taken for the next request's. After kMaxLateAcks unanswered requests in a row the
// connection is considered hung and dropped.
//
// Limits: at most max_connections open connections (a connection beyond that is closed at once; ztunnel
// retries with backoff); at most accepts_per_second accepts (spacing 1 s / rate); every packet <= 1024 bytes.
//
// Contract: everything runs on one executor, no locks: call every method (and resume the awaitables) on it.
// The SnapshotProvider and the ConnectionListener are called on that executor, never after stop(), and must
// not destroy the ZdsServer (calling stop() is fine). The destructor calls stop(). Coroutines still running
// keep the internal state alive until they notice the stop; the io_context must outlive the ZdsServer.
// Remove a pod from the snapshot source before calling del() for it (a ztunnel that reconnects in between
// then drains the pod through the snapshot).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/base/result.h"
#include "common/net/fd.h"
#include "common/zds/messages.h"

namespace ambient::cni {

inline constexpr const char* kDefaultZdsSocketPath = "/var/run/ztunnel/ztunnel.sock";

struct ZdsServerOptions {
  std::string path = kDefaultZdsSocketPath;  // parent directories created if missing (like mkdir -p)
  unsigned socket_mode = 0600;               // ztunnel runs as root
  std::chrono::milliseconds hello_timeout{5000};
  std::chrono::milliseconds ack_timeout{5000};  // per request: write plus ack
  std::chrono::milliseconds keepalive_interval{5000};  // idle time between probes
  std::size_t max_connections = 16;
  unsigned accepts_per_second = 5;
  std::size_t max_queued_requests = 1024;  // per connection, behind the one in flight
};

// One pod of the snapshot replayed to every new connection.
struct ZdsSnapshotPod {
  std::string uid;
  zds::WorkloadInfo info;
  net::UniqueFd netns;  // owned (dup the cache's fd); invalid: the netns is unknown, Keep is sent instead
};
using ZdsSnapshotProvider = std::function<std::vector<ZdsSnapshotPod>()>;

struct ZdsConnectionEvent {
  enum class Kind {
    Ready,  // a connection acked SnapshotSent; add() may now reach it
    Gone,   // a connection closed (in any state); its unanswered adds failed with Closed
  };
  Kind kind = Kind::Ready;
  std::uint64_t connection_id = 0;    // 1, 2, ... in accept order (for logs)
  std::size_t connections = 0;        // open connections after the event
  std::size_t ready_connections = 0;  // ... of which have their snapshot acked
};
using ZdsConnectionListener = std::function<void(const ZdsConnectionEvent&)>;

class ZdsServer {
 public:
  // A ztunnel that answers nothing more is dropped after this many timed-out requests in a row.
  static constexpr unsigned kMaxLateAcks = 3;

  ZdsServer(boost::asio::any_io_executor executor, ZdsServerOptions options, ZdsSnapshotProvider snapshot);
  ~ZdsServer();
  ZdsServer(const ZdsServer&) = delete;
  ZdsServer& operator=(const ZdsServer&) = delete;

  // Replaces the connection event listener (readiness, retry of pending pods).
  void on_connection(ZdsConnectionListener listener);

  // Creates the parent directory, replaces a stale socket file, listens and starts accepting.
  // InvalidArgument when the path holds something that is not a socket; Io otherwise.
  Result<void> start();

  // Closes the listener and every connection (requests in flight or queued fail with Cancelled) and removes
  // the socket file if it is still ours. Idempotent.
  void stop();

  // Hands the pod to the newest ztunnel. `netns_fd` is borrowed only until add() starts running: its first
  // step dups it (co_await the call directly, as usual; from then on the caller may close its fd).
  // Errors: NotFound "no ztunnel connection" when there is none; InvalidArgument "ztunnel nacked ..." with
  // ztunnel's reason for a NACK (or for bad arguments); Timeout when no ack came in ack_timeout; Closed when
  // the connection went away first; ResourceExhausted when its queue is full; Cancelled after stop().
  boost::asio::awaitable<Result<void>> add(std::string uid, zds::WorkloadInfo info, int netns_fd);

  // Tells every ztunnel the pod is gone. Ok with no connection, and for a connection that goes away before
  // answering (that ztunnel is gone). Otherwise the errors of all connections are joined into one, whose
  // kind is the first error's.
  boost::asio::awaitable<Result<void>> del(std::string uid);

  std::size_t connection_count() const noexcept;        // open connections, in any state
  std::size_t ready_connection_count() const noexcept;  // ... whose snapshot is acked
  const std::string& path() const noexcept;

  struct State;  // shared with the accept and connection coroutines

 private:
  std::shared_ptr<State> state_;
};

}  // namespace ambient::cni
