// WaypointProxy's HTTP/2 side (prior knowledge inside the tunnel; gRPC is HTTP/2 with trailers): an HTTP/2 server
// session over the tunnel, one coroutine per request stream, and per worker a set of upstream HTTP/2 (h2c)
// sessions per endpoint, each over one HBONE stream (or TCP connection), multiplexing requests.
//
// Per request: the newest L7 state -> authorize (403 "RBAC: access denied"; gRPC: trailers-only grpc-status 7) ->
// route -> filters -> endpoint -> a stream on an upstream session -> response headers, body and trailers back.
// Bodies stream both ways at once (gRPC client, server and bidirectional streaming), bounded by HTTP/2 flow
// control on both sessions. A request whose body had fully arrived with its headers (at most kReplayableBody
// bytes: unary gRPC, small POSTs, GETs) is retried like HTTP/1 (connect failures, resets before the response
// headers, the retriable status codes); a streaming request is tried once. Timeouts as HTTP/1: before the
// response headers, 504 (gRPC: grpc-status 4, DEADLINE_EXCEEDED); after them the same deadline bounds the rest of
// the response, and a response still streaming at the deadline is reset both ways (flag UT).
#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/h2/session.h"
#include "waypoint/proxy/header_ops.h"
#include "waypoint/proxy/prefixed_stream.h"
#include "waypoint/proxy/response_deadline.h"
#include "waypoint/proxy/tunnel.h"
#include "waypoint/proxy/upstream.h"
#include "waypoint/proxy/waypoint_proxy.h"

namespace ambient::waypoint {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr std::size_t kReplayableBody = 64 * 1024;
constexpr std::size_t kMaxSessionsPerTarget = 8;

bool is_pseudo(const h2::Header& h) { return !h.name.empty() && h.name.front() == ':'; }

// Connection-specific fields HTTP/2 forbids (RFC 9113 8.2.2); "te" may only be "trailers".
bool is_connection_specific(const h2::Header& h) {
  return h.name == "connection" || h.name == "keep-alive" || h.name == "proxy-connection" || h.name == "transfer-encoding" ||
         h.name == "upgrade" || (h.name == "te" && h.value != "trailers");
}

// gRPC status for an HTTP status the waypoint answers with itself (gRPC's HTTP-to-status mapping, Envoy's local
// replies): 403 PERMISSION_DENIED, 504 DEADLINE_EXCEEDED, 503/502 UNAVAILABLE, else UNKNOWN/INTERNAL.
int grpc_status_for(int http) {
  switch (http) {
    case 400: return 13;
    case 401: return 16;
    case 403: return 7;
    case 404: return 12;
    case 429: case 502: case 503: return 14;
    case 504: return 4;
    default: return 2;
  }
}

// Copies a stream's body to another, then sends END_STREAM (with the source's trailers, if any). Zero copy: the
// received bytes are written from where the session put them and consumed once framed.
asio::awaitable<Result<std::uint64_t>> copy_body(h2::Stream& from, h2::Stream& to) {
  std::uint64_t total = 0;
  for (;;) {
    auto view = co_await from.read_view();
    if (!view) co_return std::move(view).error();
    if (view->empty()) break;
    total += view->size();
    auto w = co_await to.write_all(*view);
    from.consume_view(view->size());
    if (!w) co_return std::move(w).error();
  }
  if (!from.trailers().empty()) to.set_trailers(from.trailers());
  AMBIENT_CO_TRY(co_await to.shutdown_write());
  co_return total;
}

// A streaming request body, copied up on its own while the exchange waits for and relays the response (gRPC
// client and bidirectional streaming need both directions at once). On a failure the upstream stream is reset,
// which ends the exchange there too.
struct RequestPump {
  std::uint64_t bytes = 0;
  bool done = false;
};

asio::awaitable<void> pump_request(std::shared_ptr<h2::Stream> down, std::shared_ptr<h2::Stream> up, std::shared_ptr<RequestPump> pump) {
  for (;;) {
    auto view = co_await down->read_view();
    if (!view) {
      up->close();
      co_return;
    }
    if (view->empty()) break;
    pump->bytes += view->size();
    auto w = co_await up->write_all(*view);
    down->consume_view(view->size());
    if (!w) co_return;
  }
  if (!down->trailers().empty()) up->set_trailers(down->trailers());
  if (auto w = co_await up->shutdown_write(); w) pump->done = true;
}

asio::awaitable<void> run_client_session(std::shared_ptr<h2::Session> s) {
  auto r = co_await s->run();
  if (!r) spdlog::debug("waypoint: upstream HTTP/2 session to {} ended: {}", s->peer(), r.error());
}

}  // namespace

asio::awaitable<void> WaypointProxy::serve_http2(Tunnel& t, std::vector<std::uint8_t> first_bytes) {
  // The tunnel's context is shared with the request coroutines, which may finish after the session.
  auto tunnel = std::make_shared<Tunnel>(t);
  auto transport = h2::make_transport(PrefixedStream<h2::Transport>(*tunnel->io, std::move(first_bytes)));
  h2::Settings s = config_.h2;
  s.max_concurrent_streams = 100;
  s.ping_interval = std::chrono::milliseconds(0);  // the HBONE connection underneath has its own keepalive
  s.idle_timeout = config_.idle_timeout;            // as for HTTP/1 keep-alive: no request for this long
  auto self = shared_from_this();
  h2::Session::Handler handler = [self, tunnel](std::shared_ptr<h2::Stream> stream) {
    return self->serve_h2_request(tunnel, std::move(stream));
  };
  auto session = h2::Session::server(io_.get_executor(), std::move(transport), s, std::move(handler), t.peer->address);
  if (!session) {
    spdlog::warn("tunnel from {}: HTTP/2 session: {}", t.peer->address, session.error());
    t.io->close();
    co_return;
  }
  auto r = co_await (*session)->run();
  if (!r) spdlog::debug("tunnel from {} ({}): HTTP/2 session ended: {}", t.peer->address, t.authority, r.error());
  co_await t.end();
}

asio::awaitable<Result<std::shared_ptr<h2::Stream>>> WaypointProxy::open_h2_stream(const UpstreamTarget& target, const h2::Headers& headers,
                                                                                  bool end_stream) {
  const std::string key = target.authority();
  auto& sessions = h2_upstreams_[key];
  std::erase_if(sessions, [](const std::shared_ptr<h2::Session>& s) { return !s->alive() || s->draining(); });
  for (auto& s : sessions)
    if (s->can_open_stream()) co_return s->open_stream(headers, end_stream);
  if (sessions.size() >= kMaxSessionsPerTarget) co_return errorf(ErrorKind::ResourceExhausted, "{}: every upstream HTTP/2 session is full", key);
  auto pipe = co_await open_upstream(target, config_.connect_timeout);
  if (!pipe) co_return std::move(pipe).error();
  h2::Settings settings = config_.h2;
  settings.ping_interval = std::chrono::milliseconds(0);
  auto session = h2::Session::client(io_.get_executor(), std::move(*pipe), settings, key);
  if (!session) co_return std::move(session).error();
  asio::co_spawn(io_, run_client_session(*session), asio::detached);
  sessions.push_back(*session);
  co_return (*session)->open_stream(headers, end_stream);
}

asio::awaitable<void> WaypointProxy::mirror_h2(UpstreamTarget target, h2::Headers headers, std::string body) {
  auto s = co_await open_h2_stream(target, headers, body.empty());
  if (!s) co_return;
  if (!body.empty()) {
    if (auto w = co_await (*s)->write_all(bytes_of(body)); !w) co_return;
    if (auto w = co_await (*s)->shutdown_write(); !w) co_return;
  }
  std::vector<std::uint8_t> buf(16 * 1024);
  for (;;) {
    auto n = co_await (*s)->read_some(buf);
    if (!n || *n == 0) break;
  }
  co_await (*s)->finish();
}

asio::awaitable<void> WaypointProxy::serve_h2_request(std::shared_ptr<Tunnel> tp, std::shared_ptr<h2::Stream> down) {
  Tunnel& t = *tp;
  const h2::Headers& in = down->request_headers();
  RequestRecord rec;
  rec.started = std::chrono::steady_clock::now();
  rec.src_addr = t.peer->address;
  rec.src_principal = t.peer->identity.to_string();
  rec.authority = t.authority;
  rec.method = std::string(h2::find_header(in, ":method").value_or(""));
  const std::string full_path(h2::find_header(in, ":path").value_or(""));
  const auto q = full_path.find('?');
  const std::string_view path = std::string_view(full_path).substr(0, q);
  const std::string_view query = q == std::string::npos ? std::string_view() : std::string_view(full_path).substr(q + 1);
  rec.path = std::string(path);
  rec.host = std::string(h2::find_header(in, ":authority").value_or(h2::find_header(in, "host").value_or("")));
  const bool grpc = h2::find_header(in, "content-type").value_or("").starts_with("application/grpc");
  rec.protocol = grpc ? "grpc" : "http";
  rec.request_id = std::string(h2::find_header(in, "x-request-id").value_or(""));
  if (rec.request_id.empty()) rec.request_id = fmt::format("{:016x}{:016x}", picker_.random(), picker_.random());
  counters_.requests_total.fetch_add(1, std::memory_order_relaxed);

  // A local answer: HTTP status and body, or for gRPC a trailers-only response carrying the mapped grpc-status.
  auto local = [&](int status, std::string_view body) {
    rec.status = grpc ? 200 : status;
    if (grpc) {
      rec.grpc_status = std::to_string(grpc_status_for(status));
      const h2::Headers hs = {{"content-type", "application/grpc"}, {"grpc-status", rec.grpc_status}, {"grpc-message", std::string(body)}};
      (void)down->respond(200, hs, true);
    } else {
      const h2::Headers hs = {{"content-type", "text/plain"}, {"content-length", std::to_string(body.size())}};
      (void)down->respond(status, hs, false);
    }
  };

  // The newest state decides (as for HTTP/1); the tunnel's destination is looked up in it.
  auto st = state_;
  auto dst = st ? st->resolve(t.authority) : Result<Destination>(errorf(ErrorKind::NotFound, "no state"));
  if (rec.method == "CONNECT" || !dst) {
    const int status = rec.method == "CONNECT" ? 501 : 503;
    rec.reason = rec.method == "CONNECT" ? "CONNECT inside the tunnel is not proxied" : dst.error().context;
    local(status, rec.reason);
    if (!grpc) {
      (void)co_await down->write_all(bytes_of(rec.reason));
      (void)co_await down->shutdown_write();
    }
    co_await down->finish();
    recorder_.record(rec, config_.access_log);
    co_return;
  }
  rec.source = st->snapshot().workload_by_ip(st->self().network, t.source_ip);
  RequestView view;
  view.method = rec.method;
  view.path = path;
  view.query = query;
  L7Request authz = t.authz_request();
  authz.destination_port = dst->port;
  authz.method = rec.method;
  authz.path = path;
  authz.host = rec.host;
  for (const auto& h : in) {
    if (is_pseudo(h)) continue;
    view.headers.emplace_back(h.name, h.value);
    authz.headers.emplace_back(h.name, h.value);
  }
  const RequestDecision d = st->decide(*dst, view, authz, picker_.random());
  rec.route = d.route;
  rec.service = d.service;
  if (d.kind != RequestDecision::Kind::Forward) {
    std::string body;
    switch (d.kind) {
      case RequestDecision::Kind::Deny:
        rec.flags = "RBAC";
        rec.reason = d.reason;
        body = "RBAC: access denied";
        local(403, body);
        break;
      case RequestDecision::Kind::NoBackend:
        rec.reason = d.reason;
        body = "no backend";
        local(500, body);
        break;
      case RequestDecision::Kind::Redirect: {
        const auto& r = *d.rule->filters.redirect;
        const h2::Headers hs = {{"location", redirect_location(r, d.match, path, query, rec.host)}};
        rec.status = r.status_code;
        (void)down->respond(r.status_code, hs, true);
        break;
      }
      case RequestDecision::Kind::Forward: break;
    }
    if (!body.empty() && !grpc) {
      (void)co_await down->write_all(bytes_of(body));
      (void)co_await down->shutdown_write();
    }
    co_await down->finish();
    recorder_.record(rec, config_.access_log);
    co_return;
  }

  // The request as it goes upstream.
  h2::Headers out;
  out.push_back({":method", rec.method});
  out.push_back({":scheme", std::string(h2::find_header(in, ":scheme").value_or("http"))});
  out.push_back({":authority", rec.host});
  out.push_back({":path", full_path});
  for (const auto& h : in)
    if (!is_pseudo(h) && !is_connection_specific(h) && h.name != "host") out.push_back(h);
  set_header(out, "x-request-id", rec.request_id);
  if (d.rule != nullptr) {
    if (d.rule->filters.request_headers) apply_modifier(*d.rule->filters.request_headers, out);
    if (d.rule->filters.rewrite) {
      const auto& rw = *d.rule->filters.rewrite;
      if (rw.hostname) out[2].value = *rw.hostname;
      if (rw.path) out[3].value = with_query(rewrite_path(*rw.path, d.match, path), query);
    }
  }
  // A body that arrived whole with the headers can be replayed; anything else streams once.
  std::optional<std::string> body;
  if (down->remote_ended() && down->buffered_bytes() <= kReplayableBody) {
    body.emplace();
    std::vector<std::uint8_t> buf(16 * 1024);
    for (;;) {
      auto n = co_await down->read_some(buf);
      if (!n || *n == 0) break;
      body->append(reinterpret_cast<const char*>(buf.data()), *n);
    }
    rec.request_bytes = body->size();
  }

  // RequestMirror (as for HTTP/1): a copy to each mirror backend, :authority "<host>-shadow", response dropped;
  // only when the body arrived whole.
  if (d.rule != nullptr && body)
    for (const auto& mirror : d.rule->filters.mirrors) {
      if (mirror.percent < 100 && picker_.random() % 100 >= mirror.percent) continue;
      const state::Service* svc = st->service_by_name(mirror.backend.ns, mirror.backend.name);
      if (svc == nullptr) continue;
      auto target = picker_.pick(st->snapshot(), *svc, mirror.backend.port, st->self().network);
      if (!target) continue;
      h2::Headers shadow = out;
      shadow[2].value = std::string(host_without_port(rec.host)) + "-shadow";
      asio::co_spawn(io_, mirror_h2(*target, std::move(shadow), *body), keep_alive());
    }

  const RetryPolicy retry = d.rule != nullptr ? d.rule->retry : RetryPolicy{};
  const RouteTimeouts timeouts = d.rule != nullptr ? d.rule->timeouts : RouteTimeouts{};
  const auto deadline = timeouts.request ? std::optional(rec.started + *timeouts.request) : std::nullopt;
  std::vector<std::string> tried;
  asio::steady_timer timer(io_);
  std::shared_ptr<h2::Stream> up;
  bool request_streamed = false;
  auto pump = std::make_shared<RequestPump>();
  std::optional<std::chrono::steady_clock::time_point> until;  // the answering attempt's deadline
  for (std::uint32_t attempt = 0;; ++attempt) {
    rec.attempts = attempt + 1;
    const bool last = attempt >= retry.attempts || (!body && attempt > 0);
    if (attempt > 0) {
      timer.expires_after(retry_backoff(retry, attempt, picker_.random()));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    std::optional<UpstreamTarget> target;
    if (d.service != nullptr) target = picker_.pick(st->snapshot(), *d.service, d.port, st->self().network, tried);
    else if (d.workload != nullptr) target = EndpointPicker::direct(*d.workload, d.port);
    if (!target) {
      rec.flags = "UH";
      rec.reason = "no healthy endpoint";
      local(503, rec.reason);
      break;
    }
    rec.destination = target->workload;
    rec.upstream = target->authority();
    if (target->workload != nullptr) tried.push_back(target->workload->uid());
    const std::string uid = target->workload != nullptr ? target->workload->uid() : std::string();
    picker_.started(uid);
    struct Done {
      EndpointPicker& p;
      const std::string& uid;
      ~Done() { p.finished(uid); }
    } done{picker_, uid};
    const bool end_stream = body && body->empty();
    auto opened = co_await open_h2_stream(*target, out, end_stream);
    enum class End { Responded, ConnectFailed, Reset, Timeout } end = End::Responded;
    std::string why;
    if (!opened) {
      end = End::ConnectFailed;
      why = opened.error().message();
    } else {
      up = *opened;
      if (body && !body->empty()) {
        auto w = co_await up->write_all(bytes_of(*body));
        if (w) w = co_await up->shutdown_write();
        if (!w) {
          end = End::Reset;
          why = w.error().message();
        }
      }
      if (end == End::Responded) {
        std::chrono::milliseconds wait(24 * 3600 * 1000);
        until = attempt_deadline(timeouts, deadline, std::chrono::steady_clock::now());
        if (until) wait = std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(*until - std::chrono::steady_clock::now()));
        if (!body) {
          // Streaming request: its body flows up while we wait for the response.
          request_streamed = true;
          asio::co_spawn(io_, pump_request(down, up, pump), asio::detached);
        }
        Result<void> got = co_await up->wait_response(wait);
        if (!got) {
          why = got.error().message();
          end = got.error().kind == ErrorKind::Timeout ? End::Timeout : End::Reset;
          if (got.error().kind == ErrorKind::Cancelled) {
            rec.flags = "DC";
            rec.reason = why;
            up->close();
            down->close();
            recorder_.record(rec, config_.access_log);
            co_return;
          }
        }
      }
    }
    const bool retriable_status = end == End::Responded && std::find(retry.codes.begin(), retry.codes.end(), up->status()) != retry.codes.end();
    const bool retriable = end == End::ConnectFailed || (end == End::Reset && up && up->status() == 0) || retriable_status;
    const bool deadline_passed = deadline && std::chrono::steady_clock::now() >= *deadline;
    if (retriable && !last && !deadline_passed && (body || end == End::ConnectFailed)) {
      if (up) up->close();
      up.reset();
      continue;
    }
    if (end == End::Responded) break;
    rec.reason = why;
    if (up) up->close();
    up.reset();
    if (end == End::Timeout) {
      rec.flags = "UT";
      local(504, "upstream request timeout");
      if (!grpc) (void)co_await down->write_all(bytes_of("upstream request timeout"));
    } else {
      rec.flags = end == End::ConnectFailed ? "UF" : "UC";
      if (attempt > 0) rec.flags += ",URX";
      local(503, "upstream connect error or disconnect/reset before headers");
      if (!grpc) (void)co_await down->write_all(bytes_of("upstream connect error or disconnect/reset before headers"));
    }
    break;
  }
  if (!up) {
    if (!grpc && rec.status != 0) (void)co_await down->shutdown_write();
    co_await down->finish();
    recorder_.record(rec, config_.access_log);
    co_return;
  }

  // Response headers back (response header filter applied), then body and trailers, while a streaming
  // request body keeps flowing up.
  rec.status = up->status();
  h2::Headers rh;
  for (const auto& h : up->response_headers())
    if (!is_pseudo(h) && !is_connection_specific(h)) rh.push_back(h);
  if (d.rule != nullptr && d.rule->filters.response_headers) apply_modifier(*d.rule->filters.response_headers, rh);
  if (auto gs = h2::find_header(up->response_headers(), "grpc-status")) rec.grpc_status = std::string(*gs);
  const bool trailers_only = up->remote_ended() && up->buffered_bytes() == 0 && up->trailers().empty();
  if (auto r = down->respond(rec.status, rh, trailers_only); !r) {
    up->close();
    recorder_.record(rec, config_.access_log);
    co_return;
  }
  if (!trailers_only) {
    // The route deadline still runs: at it, both streams are reset, which ends the copy.
    ResponseDeadline cut(io_, until, [up, down] {
      up->close();
      down->close();
    });
    auto relayed = co_await copy_body(*up, *down);
    cut.disarm();
    if (relayed) {
      rec.response_bytes = *relayed;
    } else {
      rec.flags = cut.expired() ? "UT" : "UC";
      rec.reason = cut.expired() ? std::string("response not complete within the route timeout") : relayed.error().message();
      down->close();
    }
    if (auto gs = h2::find_header(up->trailers(), "grpc-status")) rec.grpc_status = std::string(*gs);
  }
  if (request_streamed) rec.request_bytes = pump->bytes;
  co_await up->finish();
  co_await down->finish();
  recorder_.record(rec, config_.access_log);
}

}  // namespace ambient::waypoint
