#pragma once
// Proxy: one worker's share of one proxy instance: dedicated mode's single local workload, or one enrolled
// pod in in-pod (shared) mode, whose sockets a NetnsSocketFactory creates inside the pod's netns. It owns
// the worker's listeners (SO_REUSEPORT: every worker binds the same ports and the kernel spreads
// connections), the worker's HBONE pool and the per-connection coroutines. Everything here runs on the
// worker's io_context; the control thread only posts new snapshots and certificate bundles.
//
// Listeners (reference ztunnel.md 2): 15001 captured outbound (SO_ORIGINAL_DST), 15080 SOCKS5, 15008
// HBONE inbound, 15006 captured inbound plaintext. Every connection records exactly one outcome: a metrics
// close and one access-log line.
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"
#include "common/hbone/pool.h"
#include "common/net/connection_limit.h"
#include "common/net/tcp_stream.h"
#include "common/rbac/connection.h"
#include "common/state/snapshot.h"
#include "common/telemetry/access_log.h"
#include "common/telemetry/tcp_metrics.h"
#include "ztunnel/app/config.h"
#include "common/identity/identity_manager.h"
#include "ztunnel/proxy/outbound_request.h"
#include "ztunnel/proxy/socket_factory.h"

namespace ambient::ztunnel {

// Whom a proxy instance serves.
struct ProxyScope {
  WorkloadInfo workload;  // found in the state by namespace + name (the source of outbound connections)
  std::string identity;   // fixed SPIFFE identity (in-pod: from the pod's ZDS WorkloadInfo); empty = the state workload's
  std::string label;      // log prefix: "" (dedicated) or "pod <uid>"
};

// Counters the app reads for readiness, drain and tests (worker-thread writes, relaxed reads elsewhere).
struct ProxyCounters {
  std::atomic<std::uint64_t> live{0};            // connections in flight (all listeners)
  std::atomic<std::uint64_t> outbound_total{0};
  std::atomic<std::uint64_t> inbound_total{0};
  std::atomic<std::uint64_t> denied_total{0};
  net::ConnectionLimit connections;  // accepted downstream sockets open, all listeners (MAX_CONNECTIONS)
};

// Lifetime: always owned by a shared_ptr. Every coroutine it starts (accept loops, connections, HBONE stream
// handlers) holds a reference, so after terminate() the proxy is destroyed, on its worker, once the last of
// them has finished; the owner just drops its pointer. Pool connects still in flight use only DialContext.
class Proxy : public std::enable_shared_from_this<Proxy> {
 public:
  // `sockets` creates every listener and outbound socket (own netns, or a pod's netns in in-pod mode).
  Proxy(boost::asio::io_context& io, const Config& config, ProxyScope scope, std::shared_ptr<const SocketFactory> sockets,
        const telemetry::IstioTcpMetrics& metrics, telemetry::MetricsShard& shard, ProxyCounters& counters);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Binds every listener (SO_REUSEPORT) and starts accepting. Worker thread.
  Result<void> start();
  // The bound endpoints (after start): for tests binding port 0 and for logs.
  const std::vector<boost::asio::ip::tcp::endpoint>& bound() const { return bound_; }
  // Port actually bound per listener (0 when disabled): the next workers reuse it (SO_REUSEPORT).
  std::uint16_t outbound_port() const { return ports_[0]; }
  std::uint16_t socks5_port() const { return ports_[1]; }
  std::uint16_t inbound_port() const { return ports_[2]; }
  std::uint16_t inbound_plaintext_port() const { return ports_[3]; }

  void set_snapshot(std::shared_ptr<const state::Snapshot> snapshot);
  void set_certs(std::shared_ptr<const identity::CertBundle> certs);

  // Drain step 1: stop accepting, GOAWAY pooled connections. Live connections continue.
  void stop_accepting();
  // Drain step 2 (deadline passed): close every live connection now.
  void close_all();
  // Immediate drain (in-pod Del or replacement: the pod is gone): stop accepting, close every live connection
  // and every inbound HBONE connection, shut the pool down. The proxy then frees itself as its coroutines end.
  void terminate();
  const ProxyScope& scope() const { return scope_; }
  hbone::PoolStats pool_stats() const { return pool_.stats(); }

 private:
  struct Live;  // a live connection's abortive closer
  // What a pool connect needs, shared with the pool's connector so a connect in flight never touches the proxy.
  struct DialContext {
    std::shared_ptr<const SocketFactory> sockets;
    std::shared_ptr<const identity::CertBundle> certs;  // the current bundle (set_certs); a connection keeps the one it began with
    boost::asio::any_io_executor executor;
    std::chrono::milliseconds connect_timeout;
    h2::Settings h2;
  };
  static boost::asio::awaitable<Result<std::shared_ptr<h2::Session>>> dial(std::shared_ptr<DialContext> ctx, hbone::PoolKey key);
  // co_spawn completion token holding this proxy until the coroutine ends.
  auto keep_alive() {
    return [self = shared_from_this()](std::exception_ptr) {};
  }
  // Completion token of an accepted connection's coroutine: holds the proxy, frees the connection's slot.
  auto release_slot() {
    return [self = shared_from_this()](std::exception_ptr) { self->counters_.connections.release(); };
  }
  boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor acceptor, int kind);
  boost::asio::awaitable<void> serve_outbound(net::TcpStream app, SocketAddr original, bool socks);
  boost::asio::awaitable<void> serve_inbound(net::TcpStream connection);
  boost::asio::awaitable<void> serve_inbound_plaintext(net::TcpStream connection);
  boost::asio::awaitable<Result<net::TcpStream>> connect_upstream(const SocketAddr& to,
                                                                 const std::optional<boost::asio::ip::address>& source);
  // Inbound tail shared by 15008 and 15006: copy between the downstream and the app (closable by drain),
  // then the one metrics close and access-log line of the connection.
  // `authz` and `dst_uid` are what the connection was authorized with: every new snapshot re-evaluates
  // them (late enforcement) and closes the connection when the decision turned to deny.
  template <typename Downstream>
  boost::asio::awaitable<void> relay_inbound(Downstream& downstream, net::TcpStream& app, telemetry::TcpMetricsHandle handle,
                                             telemetry::ConnectionRecord& rec, std::chrono::steady_clock::time_point started,
                                             const rbac::Connection& authz, const std::string& dst_uid);
  // Re-checks every live inbound connection against the current snapshot's policies.
  void enforce_policies();
  std::uint64_t track(std::function<void()> closer);
  void untrack(std::uint64_t id);
  const state::Workload* local_workload() const { return local_; }

  boost::asio::io_context& io_;
  const Config& config_;
  ProxyScope scope_;
  std::shared_ptr<DialContext> dial_;  // the socket factory and the current certificates, shared with pool connects
  telemetry::TcpMetricsRecorder metrics_;
  ProxyCounters& counters_;
  std::shared_ptr<const state::Snapshot> snapshot_;
  const state::Workload* local_ = nullptr;   // in snapshot_: the workload this proxy serves
  std::string local_identity_;
  hbone::Pool pool_;
  std::list<boost::asio::ip::tcp::acceptor> acceptors_;  // stable addresses: accept loops hold references
  std::vector<boost::asio::ip::tcp::endpoint> bound_;
  std::uint16_t ports_[4] = {0, 0, 0, 0};
  std::vector<std::uint16_t> own_ports_;
  std::unordered_map<std::uint64_t, std::function<void()>> live_;
  // Live inbound connections as authorized: the connection facts, the destination workload, and a
  // closer that records the late denial's reason. Entries live exactly as long as relay_inbound.
  struct AuthorizedInbound {
    const rbac::Connection* conn;
    const std::string* dst_uid;
    std::function<void(std::string reason)> deny;
  };
  std::unordered_map<std::uint64_t, AuthorizedInbound> authorized_;
  std::vector<std::weak_ptr<h2::Session>> inbound_sessions_;  // for GOAWAY on drain; pruned as they die
  std::uint64_t next_live_ = 1;
  std::chrono::steady_clock::time_point over_limit_logged_{};
  bool accepting_ = true;
  std::uint64_t random_state_;
};

}  // namespace ambient::ztunnel
