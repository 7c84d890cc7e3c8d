#include "waypoint/proxy/waypoint_proxy.h"

#include <unistd.h>

#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/net/copy.h"
#include "common/net/endpoint.h"
#include "common/net/proxy_protocol.h"
#include "common/net/socket_options.h"
#include "common/state/ip_asio.h"
#include "common/state/resource.h"
#include "common/tls/spiffe.h"
#include "waypoint/proxy/tunnel.h"
#include "waypoint/proxy/upstream.h"
#include "waypoint/proxy/upstream_conn.h"

namespace ambient::waypoint {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n";

// True when `b` starts like an HTTP/1 request line: an upper-case method token (at most 20 characters) then a
// space ("GET ", "OPTIONS "), or only such a token so far (a request cut short by the first read).
bool looks_like_http1(std::span<const std::uint8_t> b) {
  constexpr std::size_t kMaxMethod = 20;
  for (std::size_t i = 0; i < b.size() && i <= kMaxMethod; ++i) {
    const char c = static_cast<char>(b[i]);
    if (c == ' ') return i > 0;
    if (!(c >= 'A' && c <= 'Z') && c != '-' && c != '_') return false;
  }
  return !b.empty() && b.size() <= kMaxMethod;
}

bool is_loopback(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).is_loopback();
  return a.is_loopback();
}

bool is_h2_preface(std::span<const std::uint8_t> b) {
  const std::size_t n = std::min(b.size(), kH2Preface.size());
  return n >= 3 && std::string_view(reinterpret_cast<const char*>(b.data()), n) == kH2Preface.substr(0, n);
}

}  // namespace

WaypointProxy::WaypointProxy(asio::io_context& io, const AppConfig& config, const RequestMetrics& metrics,
                             telemetry::MetricsShard& shard, WaypointCounters& counters)
    : io_(io),
      config_(config),
      recorder_(metrics, shard),
      counters_(counters),
      dial_(std::make_shared<DialContext>()),
      pool_(io.get_executor(), [ctx = dial_](const hbone::PoolKey& key) { return dial(ctx, key); },
            hbone::PoolOptions{config.pool_max_streams_per_connection, config.pool_unused_release_timeout}),
      picker_(config.load_balancing, std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32)) {
  dial_->certs = std::make_shared<identity::CertBundle>();
  dial_->executor = io.get_executor();
  dial_->connect_timeout = config.connect_timeout;
  dial_->h2 = config.h2;
}

WaypointProxy::~WaypointProxy() = default;

Result<void> WaypointProxy::start(std::uint16_t hbone_port, std::optional<std::uint16_t> proxy_protocol_port) {
  if (config_.hbone_enabled && (!balancer_ || index_ == 0)) {
    auto acc = net::listen(io_.get_executor(), {config_.bind_address, hbone_port}, net::ListenOptions{.reuseport = true, .backlog = 1024});
    if (!acc) return errorf(ErrorKind::Io, "HBONE listener: {}", acc.error().context);
    port_ = acc->local_endpoint().port();
    acceptors_.push_back(std::move(*acc));
    asio::co_spawn(io_, accept_loop(acceptors_.back(), false), keep_alive());
  }
  if (proxy_protocol_port) {
    auto acc = net::listen(io_.get_executor(), {config_.proxy_protocol_bind, *proxy_protocol_port},
                           net::ListenOptions{.reuseport = true, .backlog = 1024});
    if (!acc) return errorf(ErrorKind::Io, "PROXY protocol listener: {}", acc.error().context);
    proxy_port_ = acc->local_endpoint().port();
    acceptors_.push_back(std::move(*acc));
    asio::co_spawn(io_, accept_loop(acceptors_.back(), true), keep_alive());
  }
  return ok();
}

void WaypointProxy::stop_accepting() {
  accepting_ = false;
  for (auto& acc : acceptors_) {
    boost::system::error_code ec;
    acc.close(ec);
  }
  for (auto& w : sessions_)
    if (auto s = w.lock()) s->shutdown();
  for (auto& [key, list] : h2_upstreams_)
    for (auto& s : list) s->shutdown();
  pool_.shutdown();
}

void WaypointProxy::close_all() {
  auto live = std::move(live_);
  for (auto& [id, close] : live) close();
}

asio::awaitable<void> WaypointProxy::accept_loop(tcp::acceptor& acc, bool proxy_protocol) {
  asio::steady_timer backoff(io_);
  while (accepting_) {
    auto c = co_await net::accept(acc);
    if (!c) {
      if (c.error().kind == ErrorKind::Cancelled || !accepting_) co_return;
      spdlog::warn("{} listener: accept failed: {}; retrying in 100 ms", proxy_protocol ? "PROXY protocol" : "HBONE", c.error());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (!counters_.connections.admit_or_reset(*c, proxy_protocol ? "PROXY protocol" : "HBONE", "WAYPOINT_MAX_CONNECTIONS",
                                              over_limit_logged_)) {
      continue;
    }
    // The connection holds its slot until its coroutine ends (release_slot), on whichever worker serves it.
    (void)net::set_keepalive(c->socket().native_handle(), std::chrono::seconds(180), std::chrono::seconds(180), 9);
    if (proxy_protocol) {
      asio::co_spawn(io_, serve_proxy_protocol(std::move(*c)), release_slot());
    } else if (!balancer_) {
      asio::co_spawn(io_, serve_connection(std::move(*c)), release_slot());
    } else {
      // To the worker with the fewest live HBONE connections (this one included).
      const std::size_t to = balancer_->pick();
      auto peer = to < peers_.size() ? peers_[to].lock() : nullptr;
      if (to == index_ || !peer) {
        if (to != index_) {  // that worker's proxy is gone (shutting down): serve it here
          balancer_->done(to);
          balancer_->add(index_);
        }
        asio::co_spawn(io_, serve_balanced(std::move(*c)), release_slot());
      } else {
        const bool v6 = c->socket().local_endpoint().address().is_v6();
        const int fd = c->socket().release();
        asio::post(peer->io_, [peer, fd, v6] { peer->adopt(fd, v6); });
      }
    }
  }
}

void WaypointProxy::adopt(int fd, bool v6) {
  boost::system::error_code ec;
  tcp::socket s(io_);
  s.assign(v6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (ec) {
    ::close(fd);
    if (balancer_) balancer_->done(index_);
    counters_.connections.release();
    return;
  }
  asio::co_spawn(io_, serve_balanced(net::TcpStream(std::move(s))), release_slot());
}

asio::awaitable<void> WaypointProxy::serve_balanced(net::TcpStream connection) {
  co_await serve_connection(std::move(connection));
  if (balancer_) balancer_->done(index_);
}

asio::awaitable<void> WaypointProxy::serve_connection(net::TcpStream connection) {
  const std::string peer = connection.peer().address().to_string() + ":" + std::to_string(connection.peer().port());
  auto certs = dial_->certs;  // keeps the SSL_CTX alive for the connection
  const identity::WorkloadCert* cert = certs->find(identity_);
  if (cert == nullptr) {
    spdlog::warn("HBONE connection from {} refused: no certificate for {} yet", peer, identity_);
    co_return;
  }
  hbone::ServeOptions opts;
  opts.h2 = config_.h2;
  opts.h2.max_concurrent_streams = 100;  // istiod's waypoint connect_terminate: fairness between connections
  opts.h2.idle_timeout = config_.idle_timeout;  // an HBONE connection without tunnels
  opts.handshake_timeout = config_.handshake_timeout;  // slowloris: a stalled handshake holds no slot for long
  opts.on_session = [this](const std::shared_ptr<h2::Session>& s) {
    std::erase_if(sessions_, [](const std::weak_ptr<h2::Session>& w) { return w.expired(); });
    sessions_.push_back(s);
  };
  auto self = shared_from_this();
  hbone::StreamHandler handler = [self](std::shared_ptr<const hbone::PeerInfo> p, std::shared_ptr<h2::Stream> s) {
    return self->serve_tunnel(std::move(p), std::move(s));
  };
  auto r = co_await hbone::serve_connection(std::move(connection), cert->server_ctx.get(), std::move(handler), opts);
  if (!r) spdlog::debug("HBONE connection from {} ended: {}", peer, r.error());
}

// Counts a live tunnel and registers its closer (drain step 2) for the tunnel's lifetime.
struct WaypointProxy::LiveTunnel {
  LiveTunnel(WaypointProxy& p, std::function<void()> closer) : proxy(p), id(p.next_live_++) {
    proxy.live_.emplace(id, std::move(closer));
    proxy.counters_.tunnels_total.fetch_add(1, std::memory_order_relaxed);
    proxy.counters_.live.fetch_add(1, std::memory_order_relaxed);
  }
  ~LiveTunnel() {
    proxy.live_.erase(id);
    proxy.counters_.live.fetch_sub(1, std::memory_order_relaxed);
  }
  LiveTunnel(const LiveTunnel&) = delete;
  LiveTunnel& operator=(const LiveTunnel&) = delete;
  WaypointProxy& proxy;
  std::uint64_t id;
};

asio::awaitable<void> WaypointProxy::serve_tunnel(std::shared_ptr<const hbone::PeerInfo> peer, std::shared_ptr<h2::Stream> stream) {
  auto self = shared_from_this();  // the proxy outlives its tunnels
  LiveTunnel live(*this, [stream] { stream->close(); });
  Tunnel t;
  t.state = state_;
  t.peer = peer;
  t.stream = stream;
  t.authority = std::string(h2::find_header(stream->request_headers(), ":authority").value_or(""));
  const std::string method(h2::find_header(stream->request_headers(), ":method").value_or(""));
  if (method != "CONNECT") {
    spdlog::info("tunnel from {} refused: method {} is not CONNECT", peer->address, method);
    (void)stream->respond(400, {}, true);
    co_return;
  }
  if (!t.state) {
    (void)stream->respond(503, {}, true);
    co_return;
  }
  auto dst = t.state->resolve(t.authority);
  if (!dst) {
    spdlog::info("tunnel from {} ({}) refused: {}", peer->address, peer->identity.to_string(), dst.error().context);
    (void)stream->respond(dst.error().kind == ErrorKind::NotFound ? 503 : 400, {}, true);
    co_return;
  }
  t.destination = *dst;
  // The peer's address: ztunnel dials from the source pod's IP (or its node's).
  if (auto ep = net::parse_endpoint(peer->address)) {
    t.source_ip = state::from_asio(ep->address()).canonical();
    t.source = t.state->snapshot().workload_by_ip(t.state->self().network, t.source_ip);
  }
  if (auto r = stream->respond(200); !r) co_return;
  t.io = h2::make_transport(SharedStream(stream));
  co_await serve_protocol(t, {});
}

asio::awaitable<void> WaypointProxy::serve_proxy_protocol(net::TcpStream connection) {
  auto self = shared_from_this();
  const tcp::endpoint peer_ep = connection.peer();
  const std::string peer = net::format_endpoint(peer_ep);
  // Only the local ztunnel speaks PROXY protocol to us (Istio's sandwich: from localhost): the header is trusted,
  // so anything else is refused before a byte of it is read.
  if (!is_loopback(peer_ep.address())) {
    spdlog::warn("PROXY protocol listener: connection from {} refused (only the local ztunnel, from localhost)", peer);
    co_return;
  }
  auto io = std::shared_ptr<h2::Transport>(h2::make_transport(std::move(connection)));
  LiveTunnel live(*this, [io] { io->close(); });
  // The header, within the header read timeout and kMaxProxyHeader bytes.
  std::vector<std::uint8_t> buf(net::kMaxProxyHeader + 1024);
  std::size_t have = 0;
  std::optional<net::ParsedProxyHeader> parsed;
  asio::steady_timer timer(io_);
  timer.expires_after(config_.header_read_timeout);
  while (!parsed) {
    auto room = std::span<std::uint8_t>(buf).subspan(have);
    auto got = co_await (io->read_some(room) || timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (got.index() == 1) {
      spdlog::info("PROXY protocol from {}: no complete header within {} ms", peer, config_.header_read_timeout.count());
      co_return;
    }
    auto& n = std::get<0>(got);
    if (!n || *n == 0) co_return;
    have += *n;
    auto p = net::parse_proxy_v2(std::span<const std::uint8_t>(buf.data(), have));
    if (!p) {
      spdlog::info("PROXY protocol from {}: {}", peer, p.error());
      co_return;
    }
    parsed = std::move(*p);
  }
  const auto& h = parsed->header;
  if (h.local) co_return;  // a health check
  const auto id_text = h.tlv(net::kTlvPeerIdentity);
  auto id = id_text ? tls::parse_spiffe(*id_text) : Result<tls::SpiffeId>(errorf(ErrorKind::PeerIdentity, "no TLV 0xD0"));
  if (!id) {
    spdlog::info("PROXY protocol from {}: no source identity (TLV 0xD0): {}; refused", peer, id.error());
    co_return;
  }
  Tunnel t;
  t.state = state_;
  t.peer = std::make_shared<const hbone::PeerInfo>(hbone::PeerInfo{*id, net::format_endpoint(h.source)});
  t.authority = net::format_endpoint(h.destination);
  t.io = io;
  if (!t.state) co_return;
  auto dst = t.state->resolve(t.authority);
  if (!dst) {
    spdlog::info("PROXY protocol tunnel from {} ({}) refused: {}", t.peer->address, id->to_string(), dst.error().context);
    co_return;
  }
  t.destination = *dst;
  t.source_ip = state::from_asio(h.source.address()).canonical();
  t.source = t.state->snapshot().workload_by_ip(t.state->self().network, t.source_ip);
  std::vector<std::uint8_t> rest(buf.begin() + static_cast<std::ptrdiff_t>(parsed->consumed), buf.begin() + static_cast<std::ptrdiff_t>(have));
  co_await serve_protocol(t, std::move(rest));
}

asio::awaitable<void> WaypointProxy::serve_protocol(Tunnel& t, std::vector<std::uint8_t> first) {
  const std::string& proto = t.destination.app_protocol;
  if (proto == "TCP" || proto == "TLS") {
    co_await serve_opaque(t, std::move(first));
    co_return;
  }
  if (first.empty()) {
    // Sniff: the client speaks first in HTTP. A server-first protocol on an undeclared port waits out the
    // header read timeout, then goes opaque.
    first.resize(1024);
    asio::steady_timer timer(io_);
    timer.expires_after(config_.header_read_timeout);
    auto got = co_await (t.io->read_some(first) || timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (got.index() == 1) {
      first.clear();
      co_await serve_opaque(t, std::move(first));
      co_return;
    }
    auto& n = std::get<0>(got);
    if (!n || *n == 0) {
      (void)co_await t.io->shutdown_write();
      co_await t.end();
      co_return;
    }
    first.resize(*n);
  }
  if (is_h2_preface(first) || proto == "HTTP2" || proto == "GRPC") {
    co_await serve_http2(t, std::move(first));
    co_return;
  }
  if (proto == "HTTP" || looks_like_http1(first)) {
    co_await serve_http1(t, std::move(first));
    co_return;
  }
  co_await serve_opaque(t, std::move(first));
}

asio::awaitable<void> WaypointProxy::serve_opaque(Tunnel& t, std::vector<std::uint8_t> first_bytes) {
  const auto started = std::chrono::steady_clock::now();
  const std::string principal = t.peer->identity.to_string();
  L7Request authz = t.authz_request();
  authz.opaque = true;
  const auto decision = evaluate(t.state->policies(t.destination), authz);
  if (!decision.allowed) {
    spdlog::info("tcp: src.addr={} src.identity=\"{}\" authority={} denied: {}", t.peer->address, principal, t.authority,
                 decision.policy.empty() ? "no ALLOW policy matched" : "denied by " + decision.policy);
    t.io->close();
    co_return;
  }
  std::optional<UpstreamTarget> target;
  if (t.destination.service != nullptr)
    target = picker_.pick(t.state->snapshot(), *t.destination.service, t.destination.port, t.state->self().network);
  else if (t.destination.workload != nullptr)
    target = EndpointPicker::direct(*t.destination.workload, t.destination.port);
  if (!target) {
    spdlog::info("tcp: authority={}: no healthy endpoint", t.authority);
    t.io->close();
    co_return;
  }
  auto up = co_await open_upstream(*target, config_.connect_timeout);
  if (!up) {
    spdlog::info("tcp: authority={} upstream={}: {}", t.authority, target->authority(), up.error());
    t.io->close();
    co_return;
  }
  if (!first_bytes.empty()) {
    if (auto w = co_await (*up)->write_all(first_bytes); !w) {
      t.io->close();
      co_return;
    }
  }
  net::CopyStats stats;
  auto copied = co_await net::copy_bidirectional(*t.io, **up, stats);
  spdlog::info("tcp: src.addr={} src.identity=\"{}\" authority={} upstream={} bytes_in={} bytes_out={} duration={}ms {}", t.peer->address,
               principal, t.authority, target->authority(), stats.a_to_b.bytes + first_bytes.size(), stats.b_to_a.bytes,
               std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count(),
               copied ? std::string("complete") : "error=\"" + copied.error().message() + "\"");
  co_await t.end();
}

asio::awaitable<Result<std::shared_ptr<h2::Session>>> WaypointProxy::dial(std::shared_ptr<DialContext> ctx, hbone::PoolKey key) {
  auto certs = ctx->certs;
  const identity::WorkloadCert* cert = certs->find(key.source_identity);
  if (cert == nullptr) co_return errorf(ErrorKind::Certificate, "no certificate for {}", key.source_identity);
  hbone::DialOptions opts;
  opts.connect_timeout = ctx->connect_timeout;
  opts.h2 = ctx->h2;
  co_return co_await hbone::dial(key.destination, cert->client_ctx.get(), key.destination_sans, opts);
}

asio::awaitable<Result<std::unique_ptr<h2::Transport>>> WaypointProxy::open_upstream(const UpstreamTarget& target,
                                                                                   std::chrono::milliseconds timeout) {
  if (target.hbone) {
    hbone::PoolKey key;
    key.source_identity = identity_;
    key.destination_sans = {target.identity};
    key.destination = tcp::endpoint(target.address.address(), hbone::kHbonePort);
    const std::string authority = target.authority();
    const h2::Headers extra;
    auto s = co_await pool_.connect(key, authority, extra, timeout);
    if (!s) co_return std::move(s).error();
    co_return h2::make_transport(SharedStream(std::move(*s)));
  }
  auto c = co_await net::connect(target.address, timeout);
  if (!c) co_return std::move(c).error();
  co_return h2::make_transport(std::move(*c));
}

}  // namespace ambient::waypoint
