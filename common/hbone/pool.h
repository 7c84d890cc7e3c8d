#pragma once
// Pool: the per-worker HBONE connection pool (reference ztunnel.md 3.5; istio/ztunnel src/proxy/pool.rs).
//
// Invariants. All pool state lives on ONE executor (a worker's io_context) and takes no locks; connect(),
// shutdown() and the accessors must run there.
// - One pool per proxy instance (per pod in in-pod mode).
// - Every unique PoolKey gets dedicated connections: a connection never carries a stream for another key.
// - A connection carries at most
//     limit = min(max_streams_per_connection, peer SETTINGS_MAX_CONCURRENT_STREAMS, our h2 max_concurrent_streams)
//   concurrent streams. When every connection of a key is at its limit the pool opens another one for the
//   same key (N connections per key, N unbounded).
// - At most ONE connect in flight per key; concurrent requesters wait for it (no connection storms, ztunnel
//   PR #931). If it fails, every request waiting on it gets its error; nothing is cached, so the next
//   request dials again.
// - A new connection carries ONE stream until that first CONNECT is answered. The peer sends its SETTINGS
//   before any response, so afterwards `limit` uses the peer's value rather than our guess; without this a
//   burst would overrun a peer that allows fewer streams than we assume (REFUSED_STREAM).
// - Draining (GOAWAY sent or received) and dead connections are never handed out. They leave the pool when
//   the pool next looks at them. Their open streams finish on their own, and then the session closes itself.
// - A connection that has had no active streams for unused_release_timeout is shut down (GOAWAY, then close).
//   One sweep timer per pool does this (see PoolOptions).
// - The stream count is the session's own (h2::Session::active_streams(): streams until nghttp2 closes them).
//   The pool keeps no second counter that could drift. A stream opened by connect() counts from the moment
//   connect() submits it, before the first suspension, so two requesters can never take the same slot.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"
#include "common/h2/headers.h"
#include "common/h2/session.h"
#include "common/h2/stream.h"

namespace ambient::hbone {

// ztunnel's WorkloadKey. Two requests share connections only when all four fields are equal.
struct PoolKey {
  std::string source_identity;                 // our SPIFFE id (selects the client certificate)
  std::vector<std::string> destination_sans;   // identities the peer may present; sorted, no duplicates
                                               // (Pool::connect normalises a key that is not)
  boost::asio::ip::tcp::endpoint destination;  // peer ip:15008 (or a waypoint/gateway HBONE port)
  boost::asio::ip::address source_ip;          // our workload's IP (source-IP preservation; in-pod: the pod)

  bool operator==(const PoolKey&) const = default;
};

struct PoolKeyHash {
  std::size_t operator()(const PoolKey& k) const noexcept;
};

struct PoolOptions {
  // POOL_MAX_STREAMS_PER_CONNECTION (ztunnel default 100). The effective limit also includes the peer's
  // MAX_CONCURRENT_STREAMS and the client session's own max_concurrent_streams.
  std::uint32_t max_streams_per_connection = 100;
  // POOL_UNUSED_RELEASE_TIMEOUT (default 5 min). A sweep every tick = clamp(timeout / 4, 10 ms, 5 s)
  // closes connections with no active streams for at least this long. A connection is released between
  // timeout and timeout + 2 ticks after its last stream ended (so within 5 min 10 s for the default).
  std::chrono::milliseconds unused_release_timeout{300'000};
};

struct PoolStats {
  std::uint64_t connects_attempted = 0;  // connector calls (new connections tried)
  std::uint64_t connects_failed = 0;     // connector calls that returned an error
  std::uint64_t streams_opened = 0;      // CONNECT streams submitted, whatever their answer
  std::uint64_t streams_reused = 0;      // ...of them, on a connection that had already carried a stream
  std::uint64_t idle_released = 0;       // connections shut down after unused_release_timeout
  std::size_t connections = 0;           // gauge: pooled connections (Ready, not draining, alive)
  std::size_t draining = 0;              // gauge: out of the pool, streams still finishing

  PoolStats& operator+=(const PoolStats& o) {  // sums of several pools (workers, pods)
    connects_attempted += o.connects_attempted;
    connects_failed += o.connects_failed;
    streams_opened += o.streams_opened;
    streams_reused += o.streams_reused;
    idle_released += o.idle_released;
    connections += o.connections;
    draining += o.draining;
    return *this;
  }
};

// Opens one HBONE connection for `key`: production passes a lambda that calls hbone::dial() with the SSL_CTX
// of key.source_identity and key.destination_sans. It must return a running client session on the
// calling executor. The returned awaitable may refer to `key` and to the connector object until it
// completes; the pool keeps both alive. Its own timeouts (dial's connect/handshake) bound a connect in
// flight. Requesters stop waiting at their own deadline, but the connect still completes and pools its
// result.
using Connector = std::function<boost::asio::awaitable<Result<std::shared_ptr<h2::Session>>>(const PoolKey&)>;

class Pool {
 public:
  Pool(boost::asio::any_io_executor executor, Connector connector, PoolOptions options = {});
  ~Pool();  // shutdown(): pooled connections drain; connects still in flight are shut down when they finish
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // One HBONE tunnel: a CONNECT stream to `authority` carrying `extra` headers (ztunnel.md 3.2), on a pooled
  // connection for `key`. `timeout` bounds the whole call: waiting for a connection (including a connect
  // in flight) and the CONNECT response.
  // Errors: the connector's error (every waiter of a failed connect gets it); HttpStatus with the status
  // for a non-200 answer (the connection stays pooled); StreamReset/Closed from the stream; Timeout; Cancelled
  // after shutdown(). The arguments are copied: the caller need not keep them alive. The returned stream is
  // the caller's to end (h2/stream.h). Until then it holds one of the connection's stream slots.
  boost::asio::awaitable<Result<std::shared_ptr<h2::Stream>>> connect(const PoolKey& key, const std::string& authority,
                                                                      const h2::Headers& extra,
                                                                      std::chrono::milliseconds timeout);

  std::size_t connection_count() const;                 // pooled connections, all keys
  std::size_t connection_count(const PoolKey& key) const;
  PoolStats stats() const;

  // Drain: GOAWAY(NO_ERROR) on every pooled connection (open streams finish). Pending and later connect()
  // calls fail with Cancelled. Idempotent.
  void shutdown();

  struct State;  // shared with the background coroutines (connects in flight, the idle sweep)

 private:
  std::shared_ptr<State> state_;
};

}  // namespace ambient::hbone
