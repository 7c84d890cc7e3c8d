#include "cni/api/api_server.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>
#include <unordered_set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cni/api/cmdadd.h"
#include "common/admin/http_io.h"
#include "cni/api/files.h"
#include "cni/api/json_fields.h"
#include "cni/api/pod_json.h"

namespace ambient::cni {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using asio::awaitable;
using unix_socket = asio::local::stream_protocol;
using boost::system::error_code;

using UnixStream = beast::basic_stream<unix_socket>;

struct ApiServer::State {
  asio::any_io_executor executor;
  ApiServerOptions opts;
  PodEvents* events = nullptr;               // set by start(), cleared by stop()
  std::optional<unix_socket::acceptor> acceptor;
  std::unordered_set<UnixStream*> conns;     // open connections, for stop() and the limit
  bool stopped = false;
};

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::chrono::milliseconds kAcceptBackoff{100};  // after EMFILE and the like: don't spin
constexpr std::chrono::milliseconds kLingerTime{1000};    // lingering close: how long we drain
constexpr std::size_t kLingerMaxBytes = 256 * 1024;       // ... and how much
constexpr int kListenBacklog = 1024;  // clients wait here while max_connections are being served
constexpr auto kAtLimitPoll = std::chrono::milliseconds(5);

using BeastRequest = http::request<http::string_body>;
using BeastResponse = http::response<http::string_body>;

// What a route answers.
struct Reply {
  int status = 200;
  std::string body;   // JSON
  std::string allow;  // the Allow header of a 405
};

Reply error_reply(int status, std::string_view text) {
  json::object o;
  o["error"] = text;
  return Reply{status, json::serialize(o), {}};
}

Reply ok_reply(std::string_view uid) {
  json::object o;
  o["result"] = "ok";
  o["uid"] = uid;
  return Reply{200, json::serialize(o), {}};
}

int status_for_handler_error(const Error& e) {
  switch (e.kind) {
    case ErrorKind::InvalidArgument: return 400;
    case ErrorKind::NotFound: return 404;
    default: return 500;
  }
}

Reply handler_reply(const Result<void>& r, std::string_view what, std::string_view uid) {
  if (r) return ok_reply(uid);
  const int status = status_for_handler_error(r.error());
  spdlog::warn("cni api: {} of pod {} failed ({}): {}", what, uid, status, r.error());
  return error_reply(status, r.error().message());
}

awaitable<Reply> handle_cmdadd(PodEvents& events, std::string body) {
  auto spec = pod_spec_from_cmdadd(body);
  if (!spec) co_return error_reply(400, "bad /cmdadd body: " + spec.error().context);
  const std::string uid = spec->uid;
  spdlog::info("cni api: CNI ADD for pod {}/{} ({}), netns {}", spec->namespace_, spec->name, uid, spec->netns);
  const Result<void> r = co_await events.add_pod(std::move(*spec), PodSourceKind::Cni);
  co_return handler_reply(r, "CNI add", uid);
}

awaitable<Reply> handle_enroll(PodEvents& events, std::string body) {
  auto doc = parse_json(body, "body");
  if (!doc) co_return error_reply(400, "bad /enroll body: " + doc.error().context);
  auto spec = pod_spec_from_json(*doc, "");
  if (!spec) co_return error_reply(400, "bad /enroll body: " + spec.error().context);
  const std::string uid = spec->uid;
  spdlog::info("cni api: enroll pod {}/{} ({}), netns {}", spec->namespace_, spec->name, uid, spec->netns);
  const Result<void> r = co_await events.add_pod(std::move(*spec), PodSourceKind::Enroll);
  co_return handler_reply(r, "enroll", uid);
}

awaitable<Reply> handle_unenroll(PodEvents& events, std::string body) {
  auto doc = parse_json(body, "body");
  if (!doc) co_return error_reply(400, "bad /unenroll body: " + doc.error().context);
  auto reader = JsonObjectReader::open(*doc, "");
  if (!reader) co_return error_reply(400, "bad /unenroll body: " + reader.error().context);
  if (auto known = reader->reject_unknown_keys({"uid"}); !known) {
    co_return error_reply(400, "bad /unenroll body: " + known.error().context);
  }
  auto uid = reader->required_string("uid");
  if (!uid) co_return error_reply(400, "bad /unenroll body: " + uid.error().context);
  if (!is_valid_uid(*uid)) {
    co_return error_reply(400, fmt::format("bad /unenroll body: uid: '{}' is not a pod uid", utf8_prefix(*uid, 80)));
  }
  spdlog::info("cni api: unenroll pod {}", *uid);
  const Result<void> r = co_await events.remove_pod(*uid);
  co_return handler_reply(r, "unenroll", *uid);
}

// Route table: exact path, one method each.
struct Route {
  std::string_view path;
  http::verb method;
};
constexpr std::array<Route, 4> kRoutes = {{{"/cmdadd", http::verb::post},
                                            {"/enroll", http::verb::post},
                                            {"/unenroll", http::verb::post},
                                            {"/pods", http::verb::get}}};

awaitable<Reply> dispatch(std::shared_ptr<ApiServer::State> st, http::verb method, std::string path, std::string body) {
  const auto q = path.find('?');
  if (q != std::string::npos) path.resize(q);
  const Route* route = nullptr;
  for (const Route& r : kRoutes) {
    if (r.path == path) route = &r;
  }
  if (route == nullptr) co_return error_reply(404, fmt::format("no such path: {}", utf8_prefix(path, 200)));
  if (route->method != method) {
    const std::string allowed(std::string_view(http::to_string(route->method)));
    Reply r = error_reply(405, fmt::format("{} takes {} only", route->path, allowed));
    r.allow = allowed;
    co_return r;
  }
  if (st->events == nullptr) co_return error_reply(503, "the agent is shutting down");
  PodEvents& events = *st->events;
  if (path == "/cmdadd") co_return co_await handle_cmdadd(events, std::move(body));
  if (path == "/enroll") co_return co_await handle_enroll(events, std::move(body));
  if (path == "/unenroll") co_return co_await handle_unenroll(events, std::move(body));
  co_return Reply{200, events.pods_json(), {}};
}

BeastResponse to_beast(Reply&& reply, unsigned version, bool keep_alive) {
  BeastResponse out{static_cast<http::status>(reply.status), version};
  out.set(http::field::content_type, "application/json");
  if (!reply.allow.empty()) out.set(http::field::allow, reply.allow);
  out.body() = std::move(reply.body);
  out.keep_alive(keep_alive);
  out.prepare_payload();
  return out;
}

awaitable<void> serve_connection(std::shared_ptr<ApiServer::State> st, unix_socket::socket socket) {
  UnixStream stream(std::move(socket));
  st->conns.insert(&stream);
  struct Unregister {
    ApiServer::State* st;
    UnixStream* s;
    ~Unregister() { st->conns.erase(s); }
  } unregister{st.get(), &stream};

  beast::flat_buffer buffer;  // survives between requests: holds pipelined bytes
  const admin::HttpReadLimits limits{st->opts.max_header_bytes, st->opts.max_body_bytes, st->opts.read_timeout};
  while (!st->stopped) {
    admin::HttpRead read = co_await admin::read_request(stream, buffer, limits);
    if (!read.request) {
      if (read.status == 0) co_return;  // the socket closes with `stream`
      spdlog::debug("cni api: answering {}: {}", read.status, read.reason);
      BeastResponse res = to_beast(error_reply(read.status, read.reason), 11, false);
      stream.expires_after(st->opts.read_timeout);
      auto [wec, wn] = co_await http::async_write(stream, res, kUseTuple);
      if (!wec) co_await admin::linger_close(stream, kLingerTime, kLingerMaxBytes);
      co_return;
    }
    BeastRequest req = std::move(*read.request);
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive();
    stream.expires_never();  // the handler may wait (add_pod); the plugin bounds it from its side
    Reply reply = co_await dispatch(st, req.method(), std::string(req.target()), std::move(req.body()));
    if (st->stopped) co_return;  // stop() closed the socket while the handler ran
    BeastResponse res = to_beast(std::move(reply), version, keep_alive);
    stream.expires_after(st->opts.read_timeout);
    auto [wec, wn] = co_await http::async_write(stream, res, kUseTuple);
    if (wec) co_return;
    if (!res.keep_alive()) {
      error_code ignored;
      stream.socket().shutdown(unix_socket::socket::shutdown_send, ignored);
      co_return;
    }
  }
}

void log_unexpected(const char* what, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("cni api: {} failed unexpectedly: {}", what, ex.what());
  } catch (...) {
    spdlog::error("cni api: {} failed unexpectedly", what);
  }
}

awaitable<void> accept_loop(std::shared_ptr<ApiServer::State> st) {
  asio::steady_timer backoff(st->executor);
  while (!st->stopped) {
    // At the limit, leave new clients in the listen backlog until a connection ends (a burst of CNI ADDs, e.g.
    // 100 pods at once, is served in turn instead of refused).
    while (st->conns.size() >= st->opts.max_connections && !st->stopped) {
      backoff.expires_after(kAtLimitPoll);
      co_await backoff.async_wait(kUseTuple);
    }
    if (st->stopped) co_return;
    auto [ec, socket] = co_await st->acceptor->async_accept(kUseTuple);
    if (st->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      spdlog::warn("cni api: accept on {}: {}", st->opts.socket_path, ec.message());
      backoff.expires_after(kAcceptBackoff);
      co_await backoff.async_wait(kUseTuple);
      continue;
    }
    asio::co_spawn(st->executor, serve_connection(st, std::move(socket)),
                   [](std::exception_ptr e) { log_unexpected("connection", e); });
  }
}

Error socket_error(const std::string& path, std::string_view op, int err) {
  Error e = errorf(ErrorKind::Io, "agent socket {}: {}: {}", path, op, std::strerror(err));
  e.code = err;
  return e;
}

// Removes a previous agent's socket file; refuses to remove anything else.
Result<void> remove_stale_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return ok();
    return socket_error(path, "lstat", errno);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return errorf(ErrorKind::InvalidArgument, "agent socket {}: exists and is not a socket; not replacing it", path);
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return socket_error(path, "unlink stale socket", errno);
  spdlog::info("cni api: replaced the stale socket {}", path);
  return ok();
}

}  // namespace

ApiServer::ApiServer(asio::any_io_executor executor, ApiServerOptions options) : state_(std::make_shared<State>()) {
  state_->executor = std::move(executor);
  state_->opts = std::move(options);
}

ApiServer::~ApiServer() { stop(); }

Result<void> ApiServer::start(PodEvents& events) {
  State& st = *state_;
  const std::string& path = st.opts.socket_path;
  if (st.acceptor) return errorf(ErrorKind::InvalidArgument, "agent socket {}: already started", path);
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
    return errorf(ErrorKind::InvalidArgument, "agent socket '{}': path empty or longer than {} bytes", path,
                  sizeof(sockaddr_un::sun_path) - 1);
  }
  if (auto made = make_dirs(parent_dir(path)); !made) {
    return errorf(ErrorKind::Io, "agent socket {}: {}", path, made.error().context);
  }
  AMBIENT_TRY(remove_stale_socket(path));

  unix_socket::acceptor acceptor(st.executor);
  error_code ec;
  acceptor.open(unix_socket(), ec);
  if (ec) return errorf(ErrorKind::Io, "agent socket {}: socket: {}", path, ec.message());
  // The file bind() creates takes the socket inode's mode (minus umask): no window with a wider mode.
  if (::fchmod(acceptor.native_handle(), 0600) != 0) return socket_error(path, "fchmod", errno);
  acceptor.bind(unix_socket::endpoint(path), ec);
  if (ec) return errorf(ErrorKind::Io, "agent socket {}: bind: {}", path, ec.message());
  if (::chmod(path.c_str(), 0600) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return socket_error(path, "chmod", err);
  }
  acceptor.listen(kListenBacklog, ec);
  if (ec) {
    ::unlink(path.c_str());
    return errorf(ErrorKind::Io, "agent socket {}: listen: {}", path, ec.message());
  }
  st.acceptor.emplace(std::move(acceptor));
  st.events = &events;
  st.stopped = false;
  asio::co_spawn(st.executor, accept_loop(state_), [](std::exception_ptr e) { log_unexpected("accept loop", e); });
  spdlog::info("cni api: serving on {}", path);
  return ok();
}

void ApiServer::stop() {
  State& st = *state_;
  if (st.stopped) return;
  st.stopped = true;
  st.events = nullptr;
  error_code ec;
  if (st.acceptor && st.acceptor->is_open()) {
    st.acceptor->close(ec);
    ::unlink(st.opts.socket_path.c_str());
  }
  for (UnixStream* s : st.conns) s->socket().close(ec);  // pending reads complete with an error
}

const std::string& ApiServer::socket_path() const noexcept { return state_->opts.socket_path; }

std::size_t ApiServer::open_connections() const noexcept { return state_->conns.size(); }

}  // namespace ambient::cni
