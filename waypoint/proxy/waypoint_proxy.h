#pragma once
// WaypointProxy: one worker's share of the waypoint. It owns the worker's HBONE listener (15008, SO_REUSEPORT:
// every worker binds the port and the kernel spreads connections), its upstream HBONE pool, its load balancer
// and its idle upstream HTTP/1 connections. Everything here runs on the worker's io_context; the control thread
// only posts new L7 state and certificate bundles.
//
// Istio's sandwich binding is served too: the local ztunnel terminates HBONE and sends each tunnel as TCP with a
// PROXY protocol v2 header (source identity in TLV 0xD0) to the PROXY listener (localhost:15088 when enabled).
//
// One tunnel (a CONNECT stream on 15008, source identity = the peer certificate's URI SAN):
//   :authority -> Destination (service VIP:port, or workload IP:port) -> 200 -> protocol:
//     the service port's app_protocol when declared (TCP/TLS opaque; HTTP/HTTP2/GRPC parsed), else sniffed
//     from the first bytes: an HTTP/1 request line -> the HTTP/1 exchange (http1_exchange.cpp), the HTTP/2
//     preface -> the HTTP/2 exchange (http2_exchange.cpp; gRPC), anything else -> opaque TCP with L4 policy only.
//   HTTP/1 and HTTP/2, per request: authorize (403 "RBAC: access denied") -> route (HTTPRoute, default = the original
//     service) -> filters -> endpoint (EndpointPicker) -> HBONE to its ztunnel with the waypoint's identity
//     (pooled) -> response back; retries and timeouts per the rule. Each request records one outcome (metrics
//     + one access-log line).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"
#include "common/hbone/pool.h"
#include "common/hbone/tunnel.h"
#include "common/identity/identity_manager.h"
#include "common/net/connection_limit.h"
#include "common/net/tcp_stream.h"
#include "waypoint/app/config.h"
#include "waypoint/proxy/connection_balancer.h"
#include "waypoint/proxy/endpoint_picker.h"
#include "waypoint/proxy/l7_state.h"
#include "waypoint/proxy/request_telemetry.h"

namespace ambient::waypoint {

namespace http1 {
struct RequestHead;
struct ResponseHead;
}  // namespace http1

struct WaypointCounters {
  std::atomic<std::uint64_t> live{0};        // tunnels in flight
  std::atomic<std::uint64_t> tunnels_total{0};
  std::atomic<std::uint64_t> requests_total{0};
  net::ConnectionLimit connections;  // downstream connections open (WAYPOINT_MAX_CONNECTIONS)
};

class WaypointProxy : public std::enable_shared_from_this<WaypointProxy> {
 public:
  WaypointProxy(boost::asio::io_context& io, const AppConfig& config, const RequestMetrics& metrics,
                telemetry::MetricsShard& shard, WaypointCounters& counters);
  ~WaypointProxy();
  WaypointProxy(const WaypointProxy&) = delete;
  WaypointProxy& operator=(const WaypointProxy&) = delete;

  // Binds the HBONE listener (unless disabled) and, when given, the PROXY protocol listener (SO_REUSEPORT), and
  // starts accepting. Worker thread.
  Result<void> start(std::uint16_t hbone_port, std::optional<std::uint16_t> proxy_protocol_port);
  std::uint16_t port() const { return port_; }
  std::uint16_t proxy_protocol_port() const { return proxy_port_; }

  void set_state(std::shared_ptr<const L7State> state) {
    state_ = std::move(state);
    recorder_.clear();
  }
  void set_certs(std::shared_ptr<const identity::CertBundle> certs) { dial_->certs = std::move(certs); }
  void set_identity(std::string identity) { identity_ = std::move(identity); }
  // Exact balancing of HBONE connections (connection_balancer.h): `peers[i]` is worker i's proxy, this one is
  // worker `index`. With a balancer only worker 0 listens on the HBONE port; without one every worker does
  // (SO_REUSEPORT). Before start().
  void set_balancer(std::shared_ptr<ConnectionBalancer> balancer, std::size_t index,
                    std::vector<std::weak_ptr<WaypointProxy>> peers) {
    balancer_ = std::move(balancer);
    index_ = index;
    peers_ = std::move(peers);
  }
  // Serves an HBONE connection accepted by another worker (`fd`, counted on this worker by the balancer).
  void adopt(int fd, bool v6);

  void stop_accepting();  // drain step 1: no new connections, GOAWAY on inbound sessions and pooled connections
  void close_all();       // drain step 2: close every live tunnel

  // One tunnel's context, shared by the protocol handlers (defined in waypoint_proxy.cpp).
  struct Tunnel;
  // An upstream HTTP/1 connection, and the client side of one HTTP/1 tunnel (http1_exchange.cpp).
  struct UpstreamConn;
  struct Http1Downstream;

 private:
  struct DialContext {
    std::shared_ptr<const identity::CertBundle> certs;
    boost::asio::any_io_executor executor;
    std::chrono::milliseconds connect_timeout{};
    h2::Settings h2{};
  };
  static boost::asio::awaitable<Result<std::shared_ptr<h2::Session>>> dial(std::shared_ptr<DialContext> ctx, hbone::PoolKey key);
  auto keep_alive() {
    return [self = shared_from_this()](std::exception_ptr) {};
  }
  // Completion token of an admitted downstream connection's coroutine: holds the proxy, frees the slot.
  auto release_slot() {
    return [self = shared_from_this()](std::exception_ptr) { self->counters_.connections.release(); };
  }
  struct LiveTunnel;  // counts a live tunnel and holds its closer (waypoint_proxy.cpp)
  boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor, bool proxy_protocol);
  boost::asio::awaitable<void> serve_connection(net::TcpStream connection);
  boost::asio::awaitable<void> serve_tunnel(std::shared_ptr<const hbone::PeerInfo> peer, std::shared_ptr<h2::Stream> stream);
  // Istio's sandwich binding: a PROXY v2 connection from the local ztunnel (source identity in TLV 0xD0).
  boost::asio::awaitable<void> serve_proxy_protocol(net::TcpStream connection);
  // What the tunnel carries, declared (the service port's app_protocol) or sniffed from `first` (read if empty).
  boost::asio::awaitable<void> serve_protocol(Tunnel& t, std::vector<std::uint8_t> first);
  boost::asio::awaitable<void> serve_opaque(Tunnel& t, std::vector<std::uint8_t> first_bytes);
  boost::asio::awaitable<void> serve_http1(Tunnel& t, std::vector<std::uint8_t> first_bytes);
  // HTTP/2 (prior knowledge; gRPC): a server session over the tunnel, one coroutine per request (http2_exchange.cpp).
  boost::asio::awaitable<void> serve_http2(Tunnel& t, std::vector<std::uint8_t> first_bytes);
  boost::asio::awaitable<void> serve_h2_request(std::shared_ptr<Tunnel> t, std::shared_ptr<h2::Stream> stream);
  // A request stream on an upstream HTTP/2 session to `target` (a session with room, or a new one).
  boost::asio::awaitable<Result<std::shared_ptr<h2::Stream>>> open_h2_stream(const UpstreamTarget& target, const h2::Headers& headers,
                                                                            bool end_stream);
  boost::asio::awaitable<void> mirror_h2(UpstreamTarget target, h2::Headers headers, std::string body);
  // One forwarded request: attempts, retries, timeouts, then the response back. Returns whether the client
  // connection can carry another request; `upgraded` when it became a byte copy (101).
  boost::asio::awaitable<bool> forward_http1(Tunnel& t, Http1Downstream& down, const http1::RequestHead& req,
                                             const RequestDecision& d, RequestRecord& rec, bool& upgraded);
  // One attempt's request on `conn` (head, then the buffered `body`, or the client's body streamed when null)
  // and its final response head; interim 1xx heads are forwarded to the client on the way.
  boost::asio::awaitable<Result<const http1::ResponseHead*>> send_request(UpstreamConn& conn, Http1Downstream& down,
                                                                          const http1::RequestHead& req, const std::string& head_bytes,
                                                                          const std::string* body, RequestRecord& rec);
  // Opens a byte pipe to `target`: HBONE through the pool (authority = the endpoint ip:port) or plain TCP.
  boost::asio::awaitable<Result<std::unique_ptr<h2::Transport>>> open_upstream(const UpstreamTarget& target,
                                                                              std::chrono::milliseconds timeout);
  // An idle upstream HTTP/1 connection to `target`, or a new one (`reused` says which).
  boost::asio::awaitable<Result<std::unique_ptr<UpstreamConn>>> checkout(const UpstreamTarget& target, bool& reused);
  void checkin(std::unique_ptr<UpstreamConn> conn);
  // RequestMirror: sends `request` (head and whole body) to `target` and drops the response.
  boost::asio::awaitable<void> mirror_http1(UpstreamTarget target, std::string request, bool head_request);

  boost::asio::io_context& io_;
  const AppConfig& config_;
  RequestRecorder recorder_;
  WaypointCounters& counters_;
  std::shared_ptr<const L7State> state_;
  std::string identity_;  // the waypoint's SPIFFE id
  std::shared_ptr<DialContext> dial_;
  hbone::Pool pool_;
  EndpointPicker picker_;
  std::list<boost::asio::ip::tcp::acceptor> acceptors_;  // stable addresses: accept loops hold references
  std::uint16_t port_ = 0, proxy_port_ = 0;
  bool accepting_ = true;
  std::chrono::steady_clock::time_point over_limit_logged_{};
  std::unordered_map<std::string, std::vector<std::unique_ptr<UpstreamConn>>> idle_;  // by target authority
  std::unordered_map<std::string, std::vector<std::shared_ptr<h2::Session>>> h2_upstreams_;  // by target authority
  std::unordered_map<std::uint64_t, std::function<void()>> live_;                     // closers of live tunnels
  std::uint64_t next_live_ = 1;
  std::vector<std::weak_ptr<h2::Session>> sessions_;  // inbound HBONE sessions, for GOAWAY on drain
  std::shared_ptr<ConnectionBalancer> balancer_;
  std::size_t index_ = 0;
  std::vector<std::weak_ptr<WaypointProxy>> peers_;
  boost::asio::awaitable<void> serve_balanced(net::TcpStream connection);  // serve_connection, then balancer_->done()
};

}  // namespace ambient::waypoint
