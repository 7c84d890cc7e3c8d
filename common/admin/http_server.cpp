#include "common/admin/http_server.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <exception>
#include <limits>
#include <map>
#include <unordered_set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/admin/http_io.h"
#include "common/base/url.h"
#include "common/base/ascii.h"
#include "common/net/tcp_stream.h"

namespace ambient::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using boost::system::error_code;

struct HttpServer::State {
  asio::any_io_executor executor;
  HttpServerOptions opts;
  std::map<std::string, std::map<std::string, Handler>, std::less<>> routes;  // path -> method -> handler
  std::optional<tcp::acceptor> acceptor;
  std::unordered_set<beast::tcp_stream*> conns;  // open connections, for stop()
  bool stopped = false;
};

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::chrono::milliseconds kAcceptBackoff{100};  // after EMFILE and the like: don't spin
constexpr std::chrono::milliseconds kLingerTime{1000};    // lingering close: how long we drain
constexpr std::size_t kLingerMaxBytes = 1024 * 1024;      // ... and how much

using BeastRequest = http::request<http::string_body>;
using BeastResponse = http::response<http::string_body>;


Request to_request(BeastRequest&& r) {
  Request q;
  q.method = std::string(r.method_string());
  q.target = std::string(r.target());
  const auto qpos = q.target.find('?');
  q.path = q.target.substr(0, qpos);
  if (qpos != std::string::npos) q.query = q.target.substr(qpos + 1);
  for (const auto& f : r) q.headers.emplace_back(ascii_lower(f.name_string()), std::string(f.value()));
  q.body = std::move(r.body());
  return q;
}

BeastResponse to_beast(Response&& res, unsigned version, bool keep_alive) {
  BeastResponse out{static_cast<http::status>(res.status), version};
  out.set(http::field::content_type, res.content_type);
  for (auto& [name, value] : res.headers) out.insert(name, value);
  out.body() = std::move(res.body);
  out.keep_alive(keep_alive);
  out.prepare_payload();
  return out;
}

Response dispatch(const HttpServer::State& st, const Request& req) {
  auto path = st.routes.find(req.path);
  if (path == st.routes.end()) return Response::text(404, fmt::format("not found: {}\n", req.path));
  auto method = path->second.find(req.method);
  if (method == path->second.end()) {
    std::string allow;
    for (const auto& [m, h] : path->second) allow += allow.empty() ? m : ", " + m;
    Response r = Response::text(405, fmt::format("method {} not allowed on {} (allowed: {})\n", req.method, req.path, allow));
    r.headers.emplace_back("Allow", allow);
    return r;
  }
  try {
    return method->second(req);
  } catch (const std::exception& e) {
    spdlog::error("{} server: handler {} {} threw: {}", st.opts.name, req.method, req.path, e.what());
    return Response::text(500, fmt::format("internal error: {}\n", e.what()));
  } catch (...) {
    spdlog::error("{} server: handler {} {} threw", st.opts.name, req.method, req.path);
    return Response::text(500, "internal error\n");
  }
}

asio::awaitable<void> reply_error_and_close(beast::tcp_stream& stream, int status, std::string reason,
                                            std::chrono::milliseconds timeout) {
  BeastResponse res = to_beast(Response::text(status, std::move(reason)), 11, false);
  stream.expires_after(timeout);
  auto [ec, n] = co_await http::async_write(stream, res, kUseTuple);
  if (ec) {
    stream.close();
    co_return;
  }
  co_await linger_close(stream, kLingerTime, kLingerMaxBytes);
}

asio::awaitable<void> serve_connection(std::shared_ptr<HttpServer::State> st, tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  st->conns.insert(&stream);
  struct Unregister {
    HttpServer::State* st;
    beast::tcp_stream* s;
    ~Unregister() { st->conns.erase(s); }
  } unregister{st.get(), &stream};

  beast::flat_buffer buffer;  // survives between requests: holds pipelined bytes
  const HttpReadLimits limits{st->opts.max_header_bytes, st->opts.max_body_bytes, st->opts.read_timeout};
  while (!st->stopped) {
    HttpRead read = co_await read_request(stream, buffer, limits);
    if (!read.request) {
      if (read.status == 0) co_return;  // the socket closes with `stream`
      error_code peer_ec;
      const auto peer = stream.socket().remote_endpoint(peer_ec);
      spdlog::debug("{} server: answering {} to {}: {}", st->opts.name, read.status, peer.address().to_string(), read.reason);
      co_await reply_error_and_close(stream, read.status, read.reason + "\n", st->opts.read_timeout);
      co_return;
    }
    BeastRequest breq = std::move(*read.request);
    const unsigned version = breq.version();
    const bool keep_alive = breq.keep_alive();
    const Request req = to_request(std::move(breq));
    BeastResponse res = to_beast(dispatch(*st, req), version, keep_alive && !st->stopped);
    stream.expires_after(st->opts.read_timeout);
    auto [wec, wn] = co_await http::async_write(stream, res, kUseTuple);
    if (wec) co_return;
    if (!res.keep_alive()) {
      error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
  }
}

asio::awaitable<void> accept_loop(std::shared_ptr<HttpServer::State> st) {
  asio::steady_timer backoff(st->executor);
  while (!st->stopped) {
    auto s = co_await net::accept(*st->acceptor);
    if (!s) {
      if (st->stopped || s.error().kind == ErrorKind::Cancelled) co_return;
      spdlog::warn("{} server: accept: {}", st->opts.name, s.error());
      backoff.expires_after(kAcceptBackoff);
      co_await backoff.async_wait(kUseTuple);
      continue;
    }
    if (st->conns.size() >= st->opts.max_connections) {
      spdlog::warn("{} server: {} connections open, the limit; closing a new one", st->opts.name, st->conns.size());
      continue;  // `s` closes when it goes out of scope
    }
    asio::co_spawn(st->executor, serve_connection(st, std::move(s->socket())), [name = st->opts.name](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("{} server: connection failed unexpectedly: {}", name, ex.what());
      } catch (...) {
        spdlog::error("{} server: connection failed unexpectedly", name);
      }
    });
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------

std::string_view Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (ascii_iequals(k, name)) return v;  // k is stored lower-case
  }
  return {};
}

std::optional<std::string> Request::query_param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    const auto eq = pair.find('=');
    if (form_decode(pair.substr(0, eq)) != name) continue;
    return eq == std::string_view::npos ? std::string() : form_decode(pair.substr(eq + 1));
  }
  return std::nullopt;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpServer::HttpServer(asio::any_io_executor executor, HttpServerOptions options)
    : state_(std::make_shared<State>()) {
  state_->executor = std::move(executor);
  state_->opts = std::move(options);
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::route(std::string method, std::string path, Handler handler) {
  state_->routes[std::move(path)][std::move(method)] = std::move(handler);
}

Result<tcp::endpoint> HttpServer::listen(const tcp::endpoint& endpoint) {
  if (state_->acceptor) return errorf(ErrorKind::InvalidArgument, "{} server: already listening", state_->opts.name);
  auto acc = net::listen(state_->executor, endpoint);
  if (!acc) return std::move(acc).error();
  error_code ec;
  const tcp::endpoint bound = acc->local_endpoint(ec);
  if (ec) return errorf(ErrorKind::Io, "{} server: local_endpoint: {}", state_->opts.name, ec.message());
  state_->acceptor.emplace(std::move(*acc));
  state_->stopped = false;
  asio::co_spawn(state_->executor, accept_loop(state_), [name = state_->opts.name](std::exception_ptr e) {
    if (e) spdlog::error("{} server: accept loop ended unexpectedly", name);
  });
  return bound;
}

void HttpServer::stop() {
  State& st = *state_;
  st.stopped = true;
  error_code ec;
  if (st.acceptor && st.acceptor->is_open()) st.acceptor->close(ec);
  for (beast::tcp_stream* s : st.conns) s->socket().close(ec);  // pending reads complete with an error
}

std::size_t HttpServer::open_connections() const noexcept { return state_->conns.size(); }

}  // namespace ambient::admin
