// WaypointProxy's HTTP/1.1 side: the request loop of one tunnel and the exchange of one request with an upstream.
//
// Per request: authorize -> route -> filters -> endpoint -> upstream HTTP/1.1 (idle connection or a new HBONE
// stream) -> response back. Bodies stream through in both directions (bounded by the codec's body buffer and
// flow control); a request body of at most kReplayableBody bytes with a Content-Length is buffered first, so
// the request can be retried. Retries (the rule's, or Istio's default of 2) cover connect failures, resets
// before the response head, and the retriable status codes; each attempt prefers an endpoint not tried yet.
// Timeouts: the rule's backendRequest bounds each attempt and request bounds all of them. Before the response
// head arrives either answers 504 (flag UT); after it, the same deadline bounds the response body, and a body
// still streaming at the deadline is cut (both connections closed, flag UT), as Envoy resets such a stream.
// Keep-alive: the downstream connection carries the next request when both sides allow it and the exchange
// ended cleanly; an upstream connection goes back to the worker's idle set when its response ended cleanly.
// Upgrade (WebSocket): the 101 response is forwarded and the tunnel becomes a byte copy both ways.
#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/base/ascii.h"
#include "common/net/copy.h"
#include "waypoint/http1/codec.h"
#include "waypoint/http1/reader.h"
#include "waypoint/proxy/header_ops.h"
#include "waypoint/proxy/response_deadline.h"
#include "waypoint/proxy/prefixed_stream.h"
#include "waypoint/proxy/tunnel.h"
#include "waypoint/proxy/upstream.h"
#include "waypoint/proxy/upstream_conn.h"
#include "waypoint/proxy/waypoint_proxy.h"

namespace ambient::waypoint {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr std::size_t kReplayableBody = 64 * 1024;
constexpr std::size_t kMaxIdlePerTarget = 64;
constexpr std::size_t kLingerBytes = 1u << 20;  // dropped after a refused request before the tunnel ends
using Down = PrefixedStream<h2::Transport>;
using DownReader = http1::Reader<Down>;

std::string request_id(std::uint64_t a, std::uint64_t b) {  // UUID version 4 layout
  a = (a & 0xffffffffffff0fffull) | 0x0000000000004000ull;
  b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48,
                     b & 0xffffffffffffull);
}

// A response the waypoint makes itself.
std::string local_response(int status, std::string_view body, bool keep_alive, const h2::Headers& extra = {}) {
  http1::ResponseHead h;
  h.status = status;
  h.version = 11;
  h.headers = extra;
  h.headers.push_back({"content-type", "text/plain"});
  h.headers.push_back({"content-length", std::to_string(body.size())});
  if (!keep_alive) h.headers.push_back({"connection", "close"});
  std::string out = http1::serialize(h);
  out.append(body);
  return out;
}

std::string_view reason_or(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

}  // namespace

asio::awaitable<Result<std::unique_ptr<WaypointProxy::UpstreamConn>>> WaypointProxy::checkout(const UpstreamTarget& target,
                                                                                            bool& reused) {
  const std::string key = target.authority();
  if (auto it = idle_.find(key); it != idle_.end() && !it->second.empty()) {
    auto c = std::move(it->second.back());
    it->second.pop_back();
    reused = true;
    co_return c;
  }
  reused = false;
  auto pipe = co_await open_upstream(target, config_.connect_timeout);
  if (!pipe) co_return std::move(pipe).error();
  const http1::Limits limits{config_.max_header_bytes, config_.max_headers, 8 * 1024};
  co_return std::make_unique<UpstreamConn>(std::move(*pipe), key, limits);
}

asio::awaitable<void> WaypointProxy::mirror_http1(UpstreamTarget target, std::string request, bool head_request) {
  bool reused = false;
  auto conn = co_await checkout(target, reused);
  if (!conn) co_return;
  if (auto w = co_await (*conn)->pipe->write_all(bytes_of(request)); !w) co_return;
  for (;;) {
    auto h = co_await (*conn)->reader.read_response_head(head_request);
    if (!h || *h == nullptr) co_return;
    if ((*h)->status >= 200) break;
  }
  for (;;) {
    auto piece = co_await (*conn)->reader.read_body();
    if (!piece) co_return;
    if (piece->empty()) break;
  }
  checkin(std::move(*conn));
}

void WaypointProxy::checkin(std::unique_ptr<UpstreamConn> conn) {
  if (!accepting_) return;  // draining: let it close
  auto& v = idle_[conn->key];
  if (v.size() >= kMaxIdlePerTarget) return;
  v.push_back(std::move(conn));
}

namespace {

// What one attempt produced.
enum class AttemptEnd : std::uint8_t {
  Responded,       // a final response head arrived (it may still be retriable by status)
  ConnectFailed,   // no upstream connection
  ResetBeforeHead, // the upstream failed or closed before a response head
  Timeout,         // the attempt or request deadline passed before a response head
  DownstreamGone,  // reading the request body from the client failed
};

}  // namespace

struct WaypointProxy::Http1Downstream {
  Http1Downstream(std::shared_ptr<h2::Transport> io, std::vector<std::uint8_t> first, const http1::Limits& limits)
      : raw(std::move(io)), stream(*raw, std::move(first)), reader(stream, limits) {}
  std::shared_ptr<h2::Transport> raw;
  Down stream;
  DownReader reader;
};

namespace {

// The head timeouts of one HTTP/1 connection without a timer per request: the request loop sets `deadline`
// while it waits for a head (header read timeout for the first request, idle timeout between requests) and
// clears it once the head is in; the watchdog re-arms only when the deadline moves (at most once a second while
// requests are in flight), and when the deadline passes it answers 408 and closes the connection (the loop is
// then blocked reading, so nothing else writes).
struct HeadWatch {
  explicit HeadWatch(asio::any_io_executor ex) : timer(std::move(ex)) {}
  asio::steady_timer timer;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  bool done = false;
  bool fired = false;
  bool lingering = false;  // our side has ended (after a refused request): on the deadline just close
};

asio::awaitable<void> watch_heads(std::shared_ptr<HeadWatch> w, std::shared_ptr<h2::Transport> io) {
  using clock = std::chrono::steady_clock;
  while (!w->done) {
    const auto now = clock::now();
    if (w->deadline <= now) {
      w->fired = true;
      if (!w->lingering) {
        const std::string resp = local_response(408, "request timeout", false);
        (void)co_await io->write_all(bytes_of(resp));
      }
      io->close();
      co_return;
    }
    w->timer.expires_at(std::min(w->deadline, now + std::chrono::seconds(1)));
    co_await w->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

}  // namespace

asio::awaitable<void> WaypointProxy::serve_http1(Tunnel& t, std::vector<std::uint8_t> first_bytes) {
  const http1::Limits limits{config_.max_header_bytes, config_.max_headers, 8 * 1024};
  Http1Downstream client(t.io, std::move(first_bytes), limits);
  Down& down = client.stream;
  DownReader& reader = client.reader;
  auto watch = std::make_shared<HeadWatch>(io_.get_executor());
  watch->deadline = std::chrono::steady_clock::now() + config_.header_read_timeout;
  asio::co_spawn(io_, watch_heads(watch, t.io), asio::detached);
  struct StopWatch {
    HeadWatch& w;
    ~StopWatch() {
      w.done = true;
      w.timer.cancel();
    }
  } stop_watch{*watch};
  bool first = true;
  for (;;) {
    if (!first) watch->deadline = std::chrono::steady_clock::now() + config_.idle_timeout;  // between requests
    auto head = co_await reader.read_request_head();
    watch->deadline = std::chrono::steady_clock::time_point::max();
    if (watch->fired) break;  // the watchdog answered 408 and closed the connection
    if (!head) {
      // A request that does not parse gets its status (400, 414, 431, 501, 505) and the connection ends; a
      // connection that broke mid-head just ends.
      const int status = http1::answer_status(head.error());
      spdlog::info("http: src.addr={} authority={}: bad request ({}): {}", t.peer->address, t.authority, status, head.error().context);
      if (status != 0) {
        const std::string resp = local_response(status, reason_or(status), false);
        (void)co_await down.write_all(bytes_of(resp));
        // Lingering close: the client may still be sending the rest of what we refused. Ending the tunnel now would
        // reset it, and a reset can destroy our answer before the client reads it; so end our side, then read and
        // drop what still comes (bounded: kLingerBytes, the watchdog's header timeout) until the client closes.
        (void)co_await down.shutdown_write();
        watch->lingering = true;
        watch->deadline = std::chrono::steady_clock::now() + config_.header_read_timeout;
        std::vector<std::uint8_t> sink(16 * 1024);
        for (std::size_t drained = 0; drained < kLingerBytes && !watch->fired;) {
          auto n = co_await down.read_some(sink);
          if (!n || *n == 0) break;
          drained += *n;
        }
      }
      break;
    }
    if (*head == nullptr) break;  // the client closed between requests
    first = false;
    // Each request is decided on the newest state (a route or policy change applies to the next request of a
    // keep-alive connection); the tunnel's destination is looked up again in it.
    if (state_ && state_ != t.state) {
      auto dst = state_->resolve(t.authority);
      if (!dst) {
        spdlog::info("http: src.addr={} authority={}: no longer served: {}", t.peer->address, t.authority, dst.error().context);
        const std::string resp = local_response(503, "destination no longer known", false);
        (void)co_await down.write_all(bytes_of(resp));
        break;
      }
      t.state = state_;
      t.destination = *dst;
      t.source = t.state->snapshot().workload_by_ip(t.state->self().network, t.source_ip);
    }
    counters_.requests_total.fetch_add(1, std::memory_order_relaxed);

    const http1::RequestHead& req = **head;
    RequestRecord rec;
    rec.started = std::chrono::steady_clock::now();
    rec.protocol = "http";
    rec.src_addr = t.peer->address;
    rec.src_principal = t.peer->identity.to_string();
    rec.source = t.source;
    rec.authority = t.authority;
    rec.method = req.method;
    rec.path = std::string(req.path());
    rec.host = std::string(req.header("host").value_or(""));
    rec.request_id = std::string(req.header("x-request-id").value_or(""));
    if (rec.request_id.empty()) rec.request_id = request_id(picker_.random(), picker_.random());

    RequestView view;
    view.method = req.method;
    view.path = req.path();
    view.query = req.query();
    L7Request authz = t.authz_request();
    authz.method = req.method;
    authz.path = req.path();
    authz.host = rec.host;
    for (const auto& h : req.headers) {
      view.headers.emplace_back(h.name, h.value);
      authz.headers.emplace_back(h.name, h.value);
    }
    const RequestDecision d = t.state->decide(t.destination, view, authz, picker_.random());
    rec.route = d.route;
    rec.service = d.service;
    // A request whose body we do not read must end the connection (its bytes would be taken as the next request).
    const bool has_body = req.chunked || req.content_length.value_or(0) > 0;
    bool keep = req.keep_alive && !has_body;
    std::string local;
    switch (d.kind) {
      case RequestDecision::Kind::Deny:
        rec.status = 403;
        rec.flags = "RBAC";
        rec.reason = d.reason;
        local = local_response(403, "RBAC: access denied", keep);
        break;
      case RequestDecision::Kind::NoBackend:
        rec.status = 500;
        rec.reason = d.reason;
        local = local_response(500, "no backend", keep);
        break;
      case RequestDecision::Kind::Redirect: {
        const auto& r = *d.rule->filters.redirect;
        rec.status = r.status_code;
        const h2::Headers extra = {{"location", redirect_location(r, d.match, req.path(), req.query(), req.header("host").value_or(""))}};
        local = local_response(r.status_code, "", keep, extra);
        break;
      }
      case RequestDecision::Kind::Forward: break;
    }
    if (!local.empty()) {
      auto w = co_await down.write_all(bytes_of(local));
      recorder_.record(rec, config_.access_log);
      if (!w || !keep) break;
      continue;
    }
    bool upgraded = false;
    keep = co_await forward_http1(t, client, req, d, rec, upgraded);
    recorder_.record(rec, config_.access_log);
    if (upgraded || !keep) break;
  }
  (void)co_await down.shutdown_write();
  co_await t.end();
}

asio::awaitable<Result<const http1::ResponseHead*>> WaypointProxy::send_request(UpstreamConn& conn, Http1Downstream& client,
                                                                               const http1::RequestHead& req,
                                                                               const std::string& head_bytes, const std::string* body,
                                                                               RequestRecord& rec) {
  AMBIENT_CO_TRY(co_await conn.pipe->write_all(bytes_of(head_bytes)));
  if (body != nullptr && !body->empty()) AMBIENT_CO_TRY(co_await conn.pipe->write_all(bytes_of(*body)));
  if (body == nullptr) {
    // Stream the body: re-chunked when chunked, as is with a Content-Length.
    std::string chunk;
    for (;;) {
      auto piece = co_await client.reader.read_body();
      if (!piece) co_return errorf(ErrorKind::Cancelled, "downstream: {}", piece.error().context);
      if (piece->empty()) break;
      rec.request_bytes += piece->size();
      if (req.chunked) {
        chunk.clear();
        http1::append_chunk(chunk, *piece);
        AMBIENT_CO_TRY(co_await conn.pipe->write_all(bytes_of(chunk)));
      } else {
        AMBIENT_CO_TRY(co_await conn.pipe->write_all(*piece));
      }
    }
    if (req.chunked) {
      chunk.clear();
      http1::append_last_chunk(chunk, client.reader.trailers());
      AMBIENT_CO_TRY(co_await conn.pipe->write_all(bytes_of(chunk)));
    }
  }
  // Interim responses (100 Continue) go to the client as they come; 101 and final ones end the loop.
  for (;;) {
    auto h = co_await conn.reader.read_response_head(req.method == "HEAD");
    if (!h) co_return std::move(h).error();
    if (*h == nullptr) co_return errorf(ErrorKind::Closed, "upstream closed before a response");
    if ((*h)->status >= 200 || (*h)->status == 101) co_return *h;
    const std::string interim = http1::serialize(**h);
    AMBIENT_CO_TRY(co_await client.stream.write_all(bytes_of(interim)));
  }
}

asio::awaitable<bool> WaypointProxy::forward_http1(Tunnel& t, Http1Downstream& client, const http1::RequestHead& req,
                                                   const RequestDecision& d, RequestRecord& rec, bool& upgraded) {
  auto& reader = client.reader;
  auto& down = client.stream;
  // The head as it goes upstream: route filters, hop-by-hop headers removed, framing set below.
  http1::RequestHead out = req;
  http1::remove_hop_by_hop(out.headers);
  if (req.upgrade) {
    out.headers.push_back({"connection", "upgrade"});
    if (auto u = req.header("upgrade")) out.headers.push_back({"upgrade", std::string(*u)});
  }
  set_header(out.headers, "x-request-id", rec.request_id);
  if (d.rule != nullptr) {
    if (d.rule->filters.request_headers) apply_modifier(*d.rule->filters.request_headers, out.headers);
    if (d.rule->filters.rewrite) {
      const auto& rw = *d.rule->filters.rewrite;
      if (rw.hostname) set_header(out.headers, "host", *rw.hostname);
      if (rw.path) out.target = with_query(rewrite_path(*rw.path, d.match, req.path()), req.query());
    }
  }
  // Buffer a small request body so the request can be retried.
  const bool has_body = req.chunked || req.content_length.value_or(0) > 0;
  std::optional<std::string> body;
  if (!has_body) {
    body.emplace();
  } else if (!req.chunked && *req.content_length <= kReplayableBody && !req.expect_continue) {
    body.emplace();
    for (;;) {
      auto piece = co_await reader.read_body();
      if (!piece) {
        rec.status = 400;
        rec.flags = "DC";
        rec.reason = "reading the request body: " + piece.error().context;
        co_return false;
      }
      if (piece->empty()) break;
      body->append(reinterpret_cast<const char*>(piece->data()), piece->size());
    }
  }
  remove_header(out.headers, "content-length");
  if (body) {
    if (has_body || req.method == "POST" || req.method == "PUT" || req.method == "PATCH")
      out.headers.push_back({"content-length", std::to_string(body->size())});
  } else if (req.chunked) {
    out.headers.push_back({"transfer-encoding", "chunked"});
  } else {
    out.headers.push_back({"content-length", std::to_string(*req.content_length)});
  }
  rec.request_bytes = body ? body->size() : 0;
  // RequestMirror: a copy of the request (Host "<host>-shadow", as Envoy sends it) to each mirror backend, its
  // response discarded. Only a request whose body is buffered here can be copied; a streamed body is not.
  if (d.rule != nullptr && body)
    for (const auto& mirror : d.rule->filters.mirrors) {
      if (mirror.percent < 100 && picker_.random() % 100 >= mirror.percent) continue;
      const state::Service* svc = t.state->service_by_name(mirror.backend.ns, mirror.backend.name);
      if (svc == nullptr) continue;
      auto target = picker_.pick(t.state->snapshot(), *svc, mirror.backend.port, t.state->self().network);
      if (!target) continue;
      http1::RequestHead shadow = out;
      set_header(shadow.headers, "host", std::string(host_without_port(req.header("host").value_or(""))) + "-shadow");
      asio::co_spawn(io_, mirror_http1(*target, http1::serialize(shadow) + *body, req.method == "HEAD"), keep_alive());
    }

  const RetryPolicy retry = d.rule != nullptr ? d.rule->retry : RetryPolicy{};
  const RouteTimeouts timeouts = d.rule != nullptr ? d.rule->timeouts : RouteTimeouts{};
  const auto deadline = timeouts.request ? std::optional(rec.started + *timeouts.request) : std::nullopt;
  std::vector<std::string> tried;
  asio::steady_timer timer(io_);
  std::unique_ptr<UpstreamConn> conn;
  const http1::ResponseHead* resp = nullptr;
  std::optional<UpstreamTarget> target;
  std::optional<std::chrono::steady_clock::time_point> until;  // the answering attempt's deadline
  for (std::uint32_t attempt = 0;; ++attempt) {
    rec.attempts = attempt + 1;
    const bool last = attempt >= retry.attempts || (!body && attempt > 0);
    if (attempt > 0) {
      timer.expires_after(retry_backoff(retry, attempt, picker_.random()));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (d.service != nullptr) target = picker_.pick(t.state->snapshot(), *d.service, d.port, t.state->self().network, tried);
    else if (d.workload != nullptr) target = EndpointPicker::direct(*d.workload, d.port);
    if (!target) {
      rec.status = 503;
      rec.flags = "UH";
      rec.reason = "no healthy endpoint";
      break;
    }
    rec.destination = target->workload;
    rec.upstream = target->authority();
    if (target->workload != nullptr) tried.push_back(target->workload->uid());
    // This attempt's deadline: the rule's backendRequest, within the request timeout.
    until = attempt_deadline(timeouts, deadline, std::chrono::steady_clock::now());
    AttemptEnd end = AttemptEnd::Responded;
    std::string why;
    {
      const std::string uid = target->workload != nullptr ? target->workload->uid() : std::string();
      picker_.started(uid);
      struct Done {
        EndpointPicker& p;
        const std::string& uid;
        ~Done() { p.finished(uid); }
      } done{picker_, uid};
      bool reused = false;
      auto c = co_await checkout(*target, reused);
      if (!c) {
        end = AttemptEnd::ConnectFailed;
        why = c.error().message();
      } else {
        conn = std::move(*c);
        const std::string head_bytes = http1::serialize(out);
        const std::string* body_ptr = body ? &*body : nullptr;
        Result<const http1::ResponseHead*> got = static_cast<const http1::ResponseHead*>(nullptr);
        if (until) {
          timer.expires_at(*until);
          auto raced = co_await (send_request(*conn, client, req, head_bytes, body_ptr, rec) ||
                                 timer.async_wait(asio::as_tuple(asio::use_awaitable)));
          if (raced.index() == 1) got = errorf(ErrorKind::Timeout, "no response within the route timeout");
          else got = std::move(std::get<0>(raced));
        } else {
          got = co_await send_request(*conn, client, req, head_bytes, body_ptr, rec);
        }
        if (got) {
          resp = *got;
        } else {
          why = got.error().message();
          end = got.error().kind == ErrorKind::Timeout ? AttemptEnd::Timeout
                : got.error().kind == ErrorKind::Cancelled ? AttemptEnd::DownstreamGone
                                                           : AttemptEnd::ResetBeforeHead;
          conn->pipe->close();
          conn.reset();
        }
      }
    }
    if (end == AttemptEnd::DownstreamGone) {
      rec.status = 0;
      rec.flags = "DC";
      rec.reason = why;
      co_return false;
    }
    const bool retriable_status = end == AttemptEnd::Responded &&
                                  std::find(retry.codes.begin(), retry.codes.end(), resp->status) != retry.codes.end();
    const bool retriable = end == AttemptEnd::ConnectFailed || end == AttemptEnd::ResetBeforeHead || retriable_status;
    const bool deadline_passed = deadline && std::chrono::steady_clock::now() >= *deadline;
    if (retriable && !last && !deadline_passed && (body || end == AttemptEnd::ConnectFailed)) {
      if (conn) {
        conn->pipe->close();
        conn.reset();
      }
      resp = nullptr;
      continue;
    }
    if (end == AttemptEnd::Responded) break;
    // No response to forward: the waypoint answers.
    rec.reason = why;
    if (end == AttemptEnd::Timeout) {
      rec.status = 504;
      rec.flags = "UT";
    } else {
      rec.status = 503;
      rec.flags = end == AttemptEnd::ConnectFailed ? "UF" : "UC";
      if (attempt > 0) rec.flags += ",URX";
    }
    break;
  }
  const bool request_done = body.has_value() || reader.message_done();
  if (resp == nullptr) {
    const bool keep = req.keep_alive && request_done;
    const std::string local = local_response(rec.status, rec.status == 504 ? "upstream request timeout" : "upstream connect error or disconnect/reset before headers", keep);
    auto w = co_await down.write_all(bytes_of(local));
    co_return w && keep;
  }

  // Forward the response.
  rec.status = resp->status;
  http1::ResponseHead rh = *resp;
  http1::remove_hop_by_hop(rh.headers);
  remove_header(rh.headers, "content-length");  // set again below for the framing we send
  if (d.rule != nullptr && d.rule->filters.response_headers) apply_modifier(*d.rule->filters.response_headers, rh.headers);
  const bool no_body = req.method == "HEAD" || resp->status == 204 || resp->status == 304;
  if (resp->status == 101) {
    rh.headers.push_back({"connection", "upgrade"});
    for (const auto& h : resp->headers)
      if (h.name == "upgrade") rh.headers.push_back(h);
    const std::string head_bytes = http1::serialize(rh);
    if (auto w = co_await down.write_all(bytes_of(head_bytes)); !w) co_return false;
    upgraded = true;
    // Bytes already read past the heads belong to the new protocol.
    const auto from_client = reader.take_buffered();
    if (!from_client.empty())
      if (auto w = co_await conn->pipe->write_all(from_client); !w) co_return false;
    const auto from_server = conn->reader.take_buffered();
    if (!from_server.empty())
      if (auto w = co_await down.write_all(from_server); !w) co_return false;
    net::CopyStats stats;
    (void)co_await net::copy_bidirectional(down, *conn->pipe, stats);
    rec.request_bytes += stats.a_to_b.bytes;
    rec.response_bytes = stats.b_to_a.bytes;
    co_return false;
  }
  // Framing towards the client: the upstream's length when it gave one, else chunked (HTTP/1.1 clients) or
  // close-delimited (HTTP/1.0).
  bool chunk_out = false, close_after = false;
  if (!no_body) {
    if (resp->content_length && !resp->chunked) {
      rh.headers.push_back({"content-length", std::to_string(*resp->content_length)});
    } else if (req.version >= 11) {
      rh.headers.push_back({"transfer-encoding", "chunked"});
      chunk_out = true;
    } else {
      close_after = true;
    }
  } else if (resp->content_length) {
    rh.headers.push_back({"content-length", std::to_string(*resp->content_length)});
  }
  bool keep = req.keep_alive && resp->keep_alive && request_done && !close_after;
  if (!keep) rh.headers.push_back({"connection", "close"});
  rh.version = 11;
  const std::string head_bytes = http1::serialize(rh);
  if (auto w = co_await down.write_all(bytes_of(head_bytes)); !w) co_return false;
  bool clean = true;
  if (!no_body) {
    // The route deadline still runs: at it, the upstream is closed, which fails the read below.
    h2::Transport* upstream = conn->pipe.get();
    ResponseDeadline cut(io_, until, [upstream] { upstream->close(); });
    std::string chunk;
    for (;;) {
      auto piece = co_await conn->reader.read_body();
      if (!piece) {
        rec.flags = cut.expired() ? "UT" : "UC";
        rec.reason = cut.expired() ? std::string("response body not complete within the route timeout")
                                   : "upstream response body: " + piece.error().context;
        clean = false;
        break;
      }
      if (piece->empty()) break;
      rec.response_bytes += piece->size();
      Result<void> w = ok();
      if (chunk_out) {
        chunk.clear();
        http1::append_chunk(chunk, *piece);
        w = co_await down.write_all(bytes_of(chunk));
      } else {
        w = co_await down.write_all(*piece);
      }
      if (!w) {
        rec.flags = "DC";
        clean = false;
        break;
      }
    }
    cut.disarm();
    if (clean && chunk_out) {
      chunk.clear();
      http1::append_last_chunk(chunk, conn->reader.trailers());
      if (auto w = co_await down.write_all(bytes_of(chunk)); !w) clean = false;
    }
  }
  if (clean && resp->keep_alive) checkin(std::move(conn));
  else if (conn) conn->pipe->close();
  co_return clean && keep;
}

}  // namespace ambient::waypoint
