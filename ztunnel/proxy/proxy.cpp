#include "ztunnel/proxy/proxy.h"

#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "common/hbone/connect_headers.h"
#include "common/hbone/tunnel.h"
#include "common/net/copy.h"
#include "common/net/endpoint.h"
#include "common/net/proxy_protocol.h"
#include "common/net/socket_options.h"
#include "common/rbac/authorization.h"
#include "common/state/ip_asio.h"
#include "common/telemetry/access_log.h"
#include "ztunnel/proxy/inbound_request.h"
#include "ztunnel/proxy/socks5.h"

namespace ambient::ztunnel {

namespace asio = boost::asio;
using asio::ip::tcp;
using telemetry::ResponseFlags;

namespace {

enum ListenerKind : int { kOutbound = 0, kSocks5 = 1, kInbound = 2, kInboundPlaintext = 3 };
constexpr const char* kListenerNames[] = {"outbound", "socks5", "inbound", "inbound plaintext"};

SocketAddr from_endpoint(const tcp::endpoint& ep) { return {state::from_asio(ep.address()), ep.port()}; }
tcp::endpoint to_endpoint(const SocketAddr& a) { return {state::to_asio(a.ip), a.port}; }

using net::format_endpoint;

// Source-side labels from a workload (may be null: unknown).
void fill_source(telemetry::TcpLabels& l, const state::Workload* w) {
  if (w == nullptr) return;
  l.source_workload = w->workload_name().empty() ? w->name() : w->workload_name();
  l.source_canonical_service = w->canonical_name();
  l.source_canonical_revision = w->canonical_revision();
  l.source_workload_namespace = w->namespace_();
  l.source_app = w->canonical_name();
  l.source_version = w->canonical_revision();
  l.source_cluster = std::string(state::workload_cluster_id(*w));
}

void fill_destination(telemetry::TcpLabels& l, const state::Workload* w, const state::Service* svc) {
  if (svc != nullptr) {
    l.destination_service = svc->hostname();
    l.destination_service_namespace = svc->namespace_();
    l.destination_service_name = svc->name();
  }
  if (w == nullptr) return;
  l.destination_workload = w->workload_name().empty() ? w->name() : w->workload_name();
  l.destination_canonical_service = w->canonical_name();
  l.destination_canonical_revision = w->canonical_revision();
  l.destination_workload_namespace = w->namespace_();
  l.destination_app = w->canonical_name();
  l.destination_version = w->canonical_revision();
  l.destination_cluster = std::string(state::workload_cluster_id(*w));
}

// The one conversion between the state layer's and the rbac layer's IP value types (both 4/16 bytes).
rbac::IpAddress to_rbac(const state::IpAddr& ip) { return *rbac::IpAddress::from_bytes(ip.to_bytes()); }

std::string workload_display(const state::Workload* w) { return w == nullptr ? "" : w->name(); }

socks5::ReplyCode socks_code(const Error& e) {
  switch (e.kind) {
    case ErrorKind::PolicyDenied: return socks5::ReplyCode::NotAllowedByRuleset;
    case ErrorKind::ConnectRefused: return socks5::ReplyCode::ConnectionRefused;
    case ErrorKind::Timeout: return socks5::ReplyCode::TtlExpired;
    case ErrorKind::NotFound: return socks5::ReplyCode::HostUnreachable;
    case ErrorKind::HttpStatus: return e.code == 401 ? socks5::ReplyCode::NotAllowedByRuleset : socks5::ReplyCode::GeneralFailure;
    default: return socks5::ReplyCode::GeneralFailure;
  }
}

ResponseFlags flags_for(const Error& e) {
  switch (e.kind) {
    case ErrorKind::TlsHandshake:
    case ErrorKind::PeerIdentity: return ResponseFlags::TlsFailure;
    case ErrorKind::HttpStatus: return e.code == 401 ? ResponseFlags::Deny : ResponseFlags::Connect;
    case ErrorKind::PolicyDenied: return ResponseFlags::Deny;
    default: return ResponseFlags::Connect;
  }
}

}  // namespace

Proxy::Proxy(asio::io_context& io, const Config& config, ProxyScope scope, std::shared_ptr<const SocketFactory> sockets,
             const telemetry::IstioTcpMetrics& metrics, telemetry::MetricsShard& shard, ProxyCounters& counters)
    : io_(io), config_(config), scope_(std::move(scope)),
      dial_(std::make_shared<DialContext>(DialContext{std::move(sockets), std::make_shared<identity::CertBundle>(), io.get_executor(),
                                                      config.connect_timeout, config.h2})),
      metrics_(metrics, shard), counters_(counters), snapshot_(state::Snapshot::empty()),
      pool_(io.get_executor(), [ctx = dial_](const hbone::PoolKey& key) { return dial(ctx, key); },
            hbone::PoolOptions{config.pool_max_streams_per_connection, config.pool_unused_release_timeout}),
      random_state_(std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32) | 1) {
  own_ports_ = {config.outbound_port, config.inbound_plaintext_port, config.inbound_port};
  if (config.socks5_enabled) own_ports_.push_back(config.socks5_port);
}

Proxy::~Proxy() = default;

Result<void> Proxy::start() {
  struct Want {
    int kind;
    std::uint16_t port;
    bool enabled;
  };
  const Want wants[] = {{kOutbound, config_.outbound_port, true},
                        {kSocks5, config_.socks5_port, config_.socks5_enabled},
                        {kInbound, config_.inbound_port, true},
                        {kInboundPlaintext, config_.inbound_plaintext_port, true}};
  for (const auto& w : wants) {
    if (!w.enabled) continue;
    // SOCKS5 is a local front: it binds loopback unless the bind address is itself specific.
    auto addr = config_.bind_address;
    if (w.kind == kSocks5 && addr.is_unspecified()) addr = asio::ip::make_address("127.0.0.1");
    auto acc = dial_->sockets->listen(io_.get_executor(), {addr, w.port}, net::ListenOptions{.reuseport = true, .backlog = 1024});
    if (!acc) return errorf(ErrorKind::Io, "{} listener: {}", kListenerNames[w.kind], acc.error().context);
    bound_.push_back(acc->local_endpoint());
    ports_[w.kind] = bound_.back().port();
    asio::co_spawn(io_, accept_loop(std::move(*acc), w.kind), keep_alive());
  }
  own_ports_.clear();  // the ports really bound (port 0 in tests)
  for (auto p : ports_)
    if (p != 0) own_ports_.push_back(p);
  return ok();
}

void Proxy::set_snapshot(std::shared_ptr<const state::Snapshot> snapshot) {
  snapshot_ = std::move(snapshot);
  local_ = nullptr;
  for (const auto& [uid, w] : snapshot_->workloads())
    if (w->namespace_() == scope_.workload.ns && w->name() == scope_.workload.name) {
      local_ = w.get();
      break;
    }
  if (!scope_.identity.empty()) local_identity_ = scope_.identity;
  else local_identity_ = local_ ? state::workload_identity(*local_) : std::string();
  enforce_policies();
}

void Proxy::enforce_policies() {
  // Collect first: deny() closes sockets, and relay_inbound erases its entry only when it resumes.
  std::vector<std::pair<std::function<void(std::string)>*, std::string>> denied;
  for (auto& [id, a] : authorized_) {
    const state::Workload* w = snapshot_->workload_by_uid(*a.dst_uid);
    if (w == nullptr) {
      denied.emplace_back(&a.deny, "destination workload " + *a.dst_uid + " is no longer in the state");
      continue;
    }
    const auto decision = rbac::evaluate(snapshot_->policies_for(*w), *a.conn);
    if (!decision.allowed) denied.emplace_back(&a.deny, "policy rejection after a policy change: " + rbac::to_string(decision));
  }
  for (auto& [deny, reason] : denied) (*deny)(std::move(reason));
}

void Proxy::set_certs(std::shared_ptr<const identity::CertBundle> certs) { dial_->certs = std::move(certs); }

void Proxy::stop_accepting() {
  accepting_ = false;
  for (auto& a : acceptors_) {
    boost::system::error_code ec;
    a.close(ec);
  }
  pool_.shutdown();
  // Inbound HBONE connections: GOAWAY, so peers open new streams elsewhere while ours finish.
  for (auto& w : inbound_sessions_)
    if (auto s = w.lock()) s->shutdown();
}

void Proxy::terminate() {
  stop_accepting();
  close_all();
  for (auto& w : inbound_sessions_)
    if (auto s = w.lock()) s->terminate(0);  // NO_ERROR: nothing is wrong, the pod is gone
  inbound_sessions_.clear();
}

void Proxy::close_all() {
  auto live = std::move(live_);
  live_.clear();
  for (auto& [id, closer] : live) closer();
}

std::uint64_t Proxy::track(std::function<void()> closer) {
  const auto id = next_live_++;
  live_.emplace(id, std::move(closer));
  counters_.live.fetch_add(1, std::memory_order_relaxed);
  return id;
}

void Proxy::untrack(std::uint64_t id) {
  live_.erase(id);
  counters_.live.fetch_sub(1, std::memory_order_relaxed);
}

asio::awaitable<void> Proxy::accept_loop(tcp::acceptor acceptor, int kind) {
  acceptors_.push_back(std::move(acceptor));
  auto& acc = acceptors_.back();
  asio::steady_timer backoff(io_);
  while (accepting_) {
    auto c = co_await net::accept(acc);
    if (!c) {
      if (c.error().kind == ErrorKind::Cancelled || !accepting_) co_return;
      spdlog::warn("{} listener: accept failed: {}; retrying in 100 ms", kListenerNames[kind], c.error());
      backoff.expires_after(std::chrono::milliseconds(100));  // EMFILE and friends: don't spin
      co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (!counters_.connections.admit_or_reset(*c, kListenerNames[kind], "MAX_CONNECTIONS", over_limit_logged_)) continue;
    (void)net::set_keepalive(c->socket().native_handle(), std::chrono::seconds(180), std::chrono::seconds(180), 9);
    switch (kind) {
      case kOutbound: {
        auto orig = net::original_destination(c->socket().native_handle());
        if (!orig) {
          spdlog::warn("outbound: connection from {} has no original destination ({}); closing",
                       format_endpoint(c->peer()), orig.error());
          counters_.connections.release();
          continue;
        }
        asio::co_spawn(io_, serve_outbound(std::move(*c), from_endpoint(*orig), false), release_slot());
        break;
      }
      case kSocks5:
        asio::co_spawn(io_, serve_outbound(std::move(*c), SocketAddr{}, true), release_slot());
        break;
      case kInbound:
        asio::co_spawn(io_, serve_inbound(std::move(*c)), release_slot());
        break;
      case kInboundPlaintext:
        asio::co_spawn(io_, serve_inbound_plaintext(std::move(*c)), release_slot());
        break;
    }
  }
}

asio::awaitable<Result<std::shared_ptr<h2::Session>>> Proxy::dial(std::shared_ptr<DialContext> ctx, hbone::PoolKey key) {
  auto certs = ctx->certs;  // keeps the SSL_CTX alive for the handshake
  const identity::WorkloadCert* cert = certs->find(key.source_identity);
  if (cert == nullptr)
    co_return errorf(ErrorKind::Certificate,
                     "no certificate for {} (not issued yet, or expired while its renewal failed: see the identity warnings)",
                     key.source_identity);
  hbone::DialOptions opts;
  opts.connect_timeout = ctx->connect_timeout;
  opts.h2 = ctx->h2;
  opts.make_socket = [ctx](const tcp& protocol) { return ctx->sockets->socket(ctx->executor, protocol); };
  co_return co_await hbone::dial(key.destination, cert->client_ctx.get(), key.destination_sans, opts);
}

asio::awaitable<Result<net::TcpStream>> Proxy::connect_upstream(const SocketAddr& to,
                                                                const std::optional<asio::ip::address>& client) {
  const tcp::endpoint ep = to_endpoint(to);
  // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d: keep them as the IPv4 address they are.
  std::optional<asio::ip::address> source;
  if (client) source = state::to_asio(state::from_asio(*client));
  auto made = dial_->sockets->socket(io_.get_executor(), ep.protocol());
  if (!made) co_return errorf(ErrorKind::Io, "socket for {}: {}", to.to_string(), made.error().context);
  tcp::socket sock = std::move(*made);
  boost::system::error_code ec;
  if (source && config_.orig_src && *source != ep.address() && source->is_v4() == ep.address().is_v4()) {
    // Keep the client's address towards the app (ztunnel's freebind_connect). Needs CAP_NET_ADMIN.
    const auto family = ep.address().is_v4() ? net::IpFamily::V4 : net::IpFamily::V6;
    auto t = net::set_transparent(sock.native_handle(), family);
    if (t) {
      (void)net::set_freebind(sock.native_handle(), family);
      sock.bind({*source, 0}, ec);
    }
    if (!t || ec) {
      static bool logged = false;  // one line per process, not per connection
      if (!logged) {
        logged = true;
        spdlog::info("inbound: cannot keep the client source address towards the app ({}); the app sees ztunnel's "
                     "address instead (needs CAP_NET_ADMIN and the in-pod routing rules)",
                     t ? ec.message() : t.error().context);
      }
      sock.close(ec);
      auto fresh = dial_->sockets->socket(io_.get_executor(), ep.protocol());
      if (!fresh) co_return errorf(ErrorKind::Io, "socket for {}: {}", to.to_string(), fresh.error().context);
      sock = std::move(*fresh);
    }
  }
  co_return co_await net::connect(std::move(sock), ep, config_.connect_timeout);
}

asio::awaitable<void> Proxy::serve_outbound(net::TcpStream app, SocketAddr original, bool socks) {
  counters_.outbound_total.fetch_add(1, std::memory_order_relaxed);
  const auto started = std::chrono::steady_clock::now();
  const tcp::endpoint client = app.peer();
  bool closed_by_drain = false;
  const auto live_id = track([&app, &closed_by_drain] {
    closed_by_drain = true;
    app.close();
  });
  struct Untrack {
    Proxy* p;
    std::uint64_t id;
    ~Untrack() { p->untrack(id); }
  } untrack_guard{this, live_id};

  telemetry::ConnectionRecord rec;
  rec.direction = telemetry::Direction::Outbound;
  rec.src_addr = format_endpoint(client);

  if (socks) {
    auto target = co_await socks5_handshake(app);
    if (!target) {
      rec.event = telemetry::AccessEvent::Failed;
      rec.error = "socks5: " + target.error().context;
      telemetry::emit(rec);
      co_return;
    }
    if (auto ep = target->endpoint()) {
      original = from_endpoint(*ep);
    } else {
      // A hostname: a mesh service of that name first, else the system resolver.
      const auto& host = std::get<std::string>(target->host);
      std::optional<SocketAddr> found;
      for (const auto& [key, svc] : snapshot_->services())
        if (svc->hostname() == host)
          for (const auto& vip : svc->addresses())
            if (vip.network() == config_.network)
              if (auto ip = state::IpAddr::from_bytes(vip.address()); ip && !found) found = SocketAddr{*ip, target->port};
      if (!found) {
        tcp::resolver resolver(io_);
        auto [ec, results] = co_await resolver.async_resolve(host, std::to_string(target->port), asio::as_tuple(asio::use_awaitable));
        if (!ec && !results.empty()) found = from_endpoint(results.begin()->endpoint());
      }
      if (!found) {
        (void)co_await send_socks5_reply(app, socks5::ReplyCode::HostUnreachable);
        rec.event = telemetry::AccessEvent::Failed;
        rec.error = "socks5: cannot resolve " + host;
        telemetry::emit(rec);
        co_return;
      }
      original = *found;
    }
  }
  rec.dst_addr = original.to_string();

  auto snap = snapshot_;  // this connection keeps the state it was decided on
  const state::Workload* source = local_;
  if (source == nullptr) {
    rec.event = telemetry::AccessEvent::Failed;
    rec.error = fmt::format("unknown source workload {}/{}: not in the state", scope_.workload.ns, scope_.workload.name);
    if (socks) (void)co_await send_socks5_reply(app, socks5::ReplyCode::GeneralFailure);
    telemetry::emit(rec);
    co_return;
  }
  rec.src_workload = workload_display(source);
  rec.src_namespace = source->namespace_();
  rec.src_identity = local_identity_;
  rec.src_cluster = std::string(state::workload_cluster_id(*source));

  OutboundContext ctx;
  ctx.network = config_.network;
  ctx.own_ports = own_ports_;
  ctx.random = [this] {
    random_state_ ^= random_state_ << 13;
    random_state_ ^= random_state_ >> 7;
    random_state_ ^= random_state_ << 17;
    return random_state_;
  };
  auto decision = build_outbound_request(*snap, *source, original, ctx);
  if (!decision) {
    rec.event = telemetry::AccessEvent::Failed;
    rec.error = decision.error().message();
    if (socks) (void)co_await send_socks5_reply(app, socks_code(decision.error()));
    telemetry::emit(rec);
    co_return;
  }
  const auto& req = *decision;

  telemetry::TcpLabels labels;
  labels.reporter = telemetry::Reporter::Source;
  fill_source(labels, source);
  labels.source_principal = local_identity_;
  fill_destination(labels, req.destination_workload, req.destination_service);
  if (req.destination_service) rec.dst_service = req.destination_service->hostname();
  if (req.destination_workload) {
    rec.dst_workload = workload_display(req.destination_workload);
    rec.dst_namespace = req.destination_workload->namespace_();
    rec.dst_cluster = std::string(state::workload_cluster_id(*req.destination_workload));
  }

  net::CopyStats stats;
  Result<void> outcome = ok();
  ResponseFlags flags = ResponseFlags::None;
  telemetry::TcpMetricsHandle handle;

  if (req.protocol == Protocol::Hbone) {
    labels.connection_security_policy = telemetry::SecurityPolicy::MutualTls;
    labels.destination_principal = req.upstream_sans.empty() ? "" : req.upstream_sans.front();
    rec.dst_addr = req.next_hop.to_string();
    rec.dst_hbone_addr = req.authority;
    rec.dst_identity = labels.destination_principal;
    handle = metrics_.on_open(labels);

    hbone::PoolKey key;
    key.source_identity = local_identity_;
    key.destination_sans = req.upstream_sans;
    key.destination = to_endpoint(req.next_hop);
    if (!source->addresses().empty())
      if (auto ip = state::IpAddr::from_bytes(source->addresses(0))) key.source_ip = state::to_asio(*ip);
    hbone::Baggage bag;
    bag.cluster = std::string(state::workload_cluster_id(*source));
    bag.namespace_name = source->namespace_();
    bag.workload_type = static_cast<hbone::WorkloadType>(std::min<int>(source->workload_type(), 3));
    bag.workload_name = source->workload_name().empty() ? source->name() : source->workload_name();
    bag.service = source->canonical_name();
    bag.revision = source->canonical_revision();
    bag.region = source->locality().region();
    bag.zone = source->locality().zone();
    h2::Headers headers;
    headers.push_back({"baggage", hbone::build_baggage(bag)});
    headers.push_back({"forwarded", hbone::build_forwarded(client, req.destination_service ? req.destination_service->hostname() : "")});
    headers.push_back({"traceparent", hbone::TraceParent::random().header()});
    auto stream = co_await pool_.connect(key, req.authority, headers, config_.connect_timeout);
    if (!stream) {
      outcome = stream.error();
      flags = flags_for(stream.error());
      if (socks) (void)co_await send_socks5_reply(app, socks_code(stream.error()));
    } else {
      if (socks) {
        auto r = co_await send_socks5_reply(app, socks5::ReplyCode::Succeeded);
        if (!r) outcome = r;
      }
      if (outcome) {
        auto s = *stream;
        const auto stream_live = track([s] { s->close(); });
        outcome = co_await net::copy_bidirectional(app, *s, stats);
        untrack(stream_live);
        if (outcome) co_await s->finish();  // END_STREAM, not RST_STREAM: the peer counts resets
        else s->close();
      }
    }
  } else {
    handle = metrics_.on_open(labels);
    rec.dst_addr = req.next_hop.to_string();
    auto upstream = co_await connect_upstream(req.next_hop, std::nullopt);
    if (!upstream) {
      outcome = upstream.error();
      flags = ResponseFlags::Connect;
      if (socks) (void)co_await send_socks5_reply(app, socks_code(upstream.error()));
    } else {
      if (socks) {
        auto r = co_await send_socks5_reply(app, socks5::ReplyCode::Succeeded);
        if (!r) outcome = r;
      }
      if (outcome) outcome = co_await net::copy_bidirectional(app, *upstream, stats);
    }
  }
  metrics_.on_bytes(handle, stats.b_to_a.bytes, stats.a_to_b.bytes);
  metrics_.on_close(handle, flags);
  rec.bytes_sent = stats.a_to_b.bytes;
  rec.bytes_recv = stats.b_to_a.bytes;
  rec.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  if (!outcome) rec.error = outcome.error().message();
  else if (closed_by_drain) rec.error = "closed by drain";
  telemetry::emit(rec);
}

template <typename Downstream>
asio::awaitable<void> Proxy::relay_inbound(Downstream& downstream, net::TcpStream& app, telemetry::TcpMetricsHandle handle,
                                           telemetry::ConnectionRecord& rec, std::chrono::steady_clock::time_point started,
                                           const rbac::Connection& authz, const std::string& dst_uid) {
  bool closed_by_drain = false;
  std::string denied_late;  // set when a new snapshot's policies deny this connection
  const auto live_id = track([&downstream, &app, &closed_by_drain] {
    closed_by_drain = true;
    downstream.close();
    app.close();
  });
  authorized_.emplace(live_id, AuthorizedInbound{&authz, &dst_uid, [&downstream, &app, &denied_late](std::string reason) {
                                                   if (!denied_late.empty()) return;
                                                   denied_late = std::move(reason);
                                                   downstream.close();
                                                   app.close();
                                                 }});
  net::CopyStats stats;
  auto outcome = co_await net::copy_bidirectional(downstream, app, stats);
  authorized_.erase(live_id);
  untrack(live_id);
  if (!denied_late.empty()) {
    counters_.denied_total.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("closing inbound connection {} -> {}: {}", rec.src_addr, rec.dst_addr, denied_late);
  }
  // Istio's sent/received are the response/request directions for the destination reporter.
  metrics_.on_bytes(handle, stats.b_to_a.bytes, stats.a_to_b.bytes);
  metrics_.on_close(handle, denied_late.empty() ? ResponseFlags::None : ResponseFlags::Deny);
  rec.bytes_sent = stats.b_to_a.bytes;
  rec.bytes_recv = stats.a_to_b.bytes;
  rec.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  if (!denied_late.empty()) rec.error = denied_late;
  else if (!outcome) rec.error = outcome.error().message();
  else if (closed_by_drain) rec.error = "closed by drain";
  telemetry::emit(rec);
}

asio::awaitable<void> Proxy::serve_inbound(net::TcpStream connection) {
  counters_.inbound_total.fetch_add(1, std::memory_order_relaxed);
  boost::system::error_code ec;
  const tcp::endpoint local_ep = connection.socket().local_endpoint(ec);
  const tcp::endpoint peer_ep = connection.peer();
  auto certs = dial_->certs;
  const identity::WorkloadCert* cert = certs->find(local_identity_);
  if (cert == nullptr) {
    telemetry::ConnectionRecord rec;
    rec.event = telemetry::AccessEvent::Failed;
    rec.direction = telemetry::Direction::Inbound;
    rec.src_addr = format_endpoint(peer_ep);
    rec.dst_addr = format_endpoint(local_ep);
    rec.error = local_ ? "no certificate for " + local_identity_ : "the local workload is not in the config";
    telemetry::emit(rec);
    co_return;
  }
  const state::IpAddr dst_ip = state::from_asio(local_ep.address());
  auto handler = [this, self = shared_from_this(), dst_ip, peer_ep, local_ep](std::shared_ptr<const hbone::PeerInfo> peer,
                                                 std::shared_ptr<h2::Stream> stream) -> asio::awaitable<void> {
    const auto started = std::chrono::steady_clock::now();
    auto snap = snapshot_;
    telemetry::ConnectionRecord rec;
    rec.direction = telemetry::Direction::Inbound;
    rec.src_addr = format_endpoint(peer_ep);
    rec.src_identity = peer->identity.to_string();
    rec.dst_addr = format_endpoint(local_ep);
    const std::string authority(h2::find_header(stream->request_headers(), ":authority").value_or(""));
    const std::string method(h2::find_header(stream->request_headers(), ":method").value_or(""));
    rec.dst_hbone_addr = authority;
    InboundContext ctx{config_.network, own_ports_};
    auto req = build_inbound_request(*snap, method, authority, dst_ip, ctx);
    if (req.status != 200) {
      (void)stream->respond(req.status, {}, true);
      rec.event = telemetry::AccessEvent::Failed;
      rec.error = fmt::format("{} ({})", req.reason, req.status);
      telemetry::emit(rec);
      co_return;
    }
    const state::Workload* dst = req.workload;
    const state::Workload* src = snap->workload_by_ip(config_.network, state::from_asio(peer_ep.address()));
    rec.src_workload = workload_display(src);
    rec.src_namespace = peer->identity.ns;
    rec.dst_workload = workload_display(dst);
    rec.dst_namespace = dst->namespace_();
    rec.dst_identity = state::workload_identity(*dst);
    rec.dst_cluster = std::string(state::workload_cluster_id(*dst));
    if (req.service) rec.dst_service = req.service->hostname();

    telemetry::TcpLabels labels;
    labels.reporter = telemetry::Reporter::Destination;
    fill_source(labels, src);
    if (src == nullptr) {
      // The peer address is a node or NAT address: the client described itself in the baggage header.
      const auto bag = hbone::parse_baggage(stream->request_headers());
      labels.source_workload = bag.workload_name;
      labels.source_canonical_service = bag.service;
      labels.source_canonical_revision = bag.revision;
      labels.source_workload_namespace = bag.namespace_name;
      labels.source_app = bag.service;
      labels.source_version = bag.revision;
      labels.source_cluster = bag.cluster;
      rec.src_workload = bag.workload_name;
    }
    labels.source_principal = peer->identity.to_string();
    if (labels.source_workload_namespace.empty()) labels.source_workload_namespace = peer->identity.ns;
    fill_destination(labels, dst, req.service);
    labels.destination_principal = rec.dst_identity;
    labels.connection_security_policy = telemetry::SecurityPolicy::MutualTls;
    auto handle = metrics_.on_open(labels);

    rbac::Connection conn;
    if (auto id = rbac::Identity::parse(peer->identity.to_string())) conn.source = *id;
    const auto src_ip = state::from_asio(peer_ep.address());
    conn.source_ip = to_rbac(src_ip);
    conn.destination_ip = to_rbac(dst_ip);
    conn.destination_port = req.upstream.port;
    const auto policies = snap->policies_for(*dst);
    const auto decision = rbac::evaluate(policies, conn);
    for (const auto& note : decision.dry_run_matches) spdlog::info("authorization dry-run: {}", note);
    if (!decision.allowed) {
      counters_.denied_total.fetch_add(1, std::memory_order_relaxed);
      (void)stream->respond(401, {}, true);
      metrics_.on_close(handle, ResponseFlags::Deny);
      rec.error = "policy rejection: " + rbac::to_string(decision);
      rec.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
      telemetry::emit(rec);
      co_return;
    }
    spdlog::debug("authorization: {} -> {}: {}", rec.src_identity, rec.dst_identity, rbac::to_string(decision));

    // An application tunnel (Istio's sandwich: a waypoint in the mesh behind this ztunnel) is reached on
    // localhost from localhost, with the original source, target and identity in a PROXY v2 header.
    const bool proxy_tunnel = dst->has_application_tunnel() && dst->application_tunnel().protocol() == istio::workload::ApplicationTunnel::PROXY;
    std::optional<asio::ip::address> keep_source;
    SocketAddr to = req.upstream;
    if (proxy_tunnel) to.ip = state::from_asio(asio::ip::make_address("127.0.0.1"));
    else keep_source = peer_ep.address();
    auto app = co_await connect_upstream(to, keep_source);
    if (app && proxy_tunnel) {
      // The HBONE target: the authority's ip:port, or for a hostname authority the service's VIP and port.
      tcp::endpoint target = to_endpoint(req.upstream);
      if (auto a = parse_authority(authority); a && a->ip) {
        target = tcp::endpoint(state::to_asio(*a->ip), a->port);
      } else if (req.service != nullptr && a) {
        for (const auto& vip : req.service->addresses())
          if (auto ip = state::IpAddr::from_bytes(vip.address()); ip && vip.network() == config_.network) {
            target = tcp::endpoint(state::to_asio(*ip), a->port);
            if (ip->is_v4()) break;
          }
      }
      const std::string header = net::encode_proxy_v2(peer_ep, target, {{net::kTlvPeerIdentity, peer->identity.to_string()}});
      auto w = co_await app->write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(header.data()), header.size()));
      if (!w) app = std::move(w).error();
    }
    if (!app) {
      (void)stream->respond(503, {}, true);
      metrics_.on_close(handle, ResponseFlags::Connect);
      rec.error = "upstream " + req.upstream.to_string() + ": " + app.error().message();
      rec.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
      telemetry::emit(rec);
      co_return;
    }
    if (!stream->respond(200)) co_return;
    co_await relay_inbound(*stream, *app, handle, rec, started, conn, dst->uid());
  };
  hbone::ServeOptions options;
  options.h2 = config_.h2;  // with HBONE_IDLE_TIMEOUT
  options.h2.max_concurrent_streams = 200;
  options.handshake_timeout = config_.hbone_handshake_timeout;
  options.on_session = [this](const std::shared_ptr<h2::Session>& s) {
    std::erase_if(inbound_sessions_, [](const std::weak_ptr<h2::Session>& w) { return w.expired(); });
    if (!accepting_) s->shutdown();  // accepted just before the drain began
    inbound_sessions_.push_back(s);
  };
  auto r = co_await hbone::serve_connection(std::move(connection), cert->server_ctx.get(), handler, options);
  if (!r && r.error().kind != ErrorKind::Closed) {
    telemetry::ConnectionRecord rec;
    rec.event = telemetry::AccessEvent::Failed;
    rec.direction = telemetry::Direction::Inbound;
    rec.src_addr = format_endpoint(peer_ep);
    rec.dst_addr = format_endpoint(local_ep);
    rec.error = r.error().message();
    telemetry::emit(rec);
  }
}

asio::awaitable<void> Proxy::serve_inbound_plaintext(net::TcpStream connection) {
  counters_.inbound_total.fetch_add(1, std::memory_order_relaxed);
  const auto started = std::chrono::steady_clock::now();
  const tcp::endpoint peer_ep = connection.peer();
  telemetry::ConnectionRecord rec;
  rec.direction = telemetry::Direction::Inbound;
  rec.src_addr = format_endpoint(peer_ep);
  auto orig = net::original_destination(connection.socket().native_handle());
  if (!orig) {
    rec.event = telemetry::AccessEvent::Failed;
    rec.error = "no original destination: " + orig.error().context;
    telemetry::emit(rec);
    co_return;
  }
  const SocketAddr dst = from_endpoint(*orig);
  rec.dst_addr = dst.to_string();
  auto snap = snapshot_;
  const state::Workload* w = snap->workload_by_ip(config_.network, dst.ip);
  if (w == nullptr || std::find(own_ports_.begin(), own_ports_.end(), dst.port) != own_ports_.end()) {
    rec.event = telemetry::AccessEvent::Failed;
    rec.error = w == nullptr ? "no workload at " + dst.to_string() : "target is one of ztunnel's own ports";
    telemetry::emit(rec);
    co_return;
  }
  rec.dst_workload = workload_display(w);
  rec.dst_namespace = w->namespace_();
  telemetry::TcpLabels labels;
  labels.reporter = telemetry::Reporter::Destination;
  fill_source(labels, snap->workload_by_ip(config_.network, state::from_asio(peer_ep.address())));
  fill_destination(labels, w, nullptr);
  labels.destination_principal = state::workload_identity(*w);
  auto handle = metrics_.on_open(labels);
  rbac::Connection conn;  // plaintext: no identity
  const auto src_ip = state::from_asio(peer_ep.address());
  conn.source_ip = to_rbac(src_ip);
  conn.destination_ip = to_rbac(dst.ip);
  conn.destination_port = dst.port;
  const auto decision = rbac::evaluate(snap->policies_for(*w), conn);
  if (!decision.allowed) {
    counters_.denied_total.fetch_add(1, std::memory_order_relaxed);
    metrics_.on_close(handle, ResponseFlags::Deny);
    rec.error = "policy rejection: " + rbac::to_string(decision);
    telemetry::emit(rec);
    co_return;
  }
  auto app = co_await connect_upstream(dst, peer_ep.address());
  if (!app) {
    metrics_.on_close(handle, ResponseFlags::Connect);
    rec.error = "upstream " + dst.to_string() + ": " + app.error().message();
    telemetry::emit(rec);
    co_return;
  }
  co_await relay_inbound(connection, *app, handle, rec, started, conn, w->uid());
}

}  // namespace ambient::ztunnel
