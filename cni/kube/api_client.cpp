#include "cni/kube/api_client.h"

#include <chrono>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <spdlog/spdlog.h>

#include "cni/api/json_fields.h"
#include "cni/kube/https_connection.h"
#include "cni/kube/line_splitter.h"
#include "cni/kube/object_meta.h"

namespace ambient::cni::kube {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;

struct ApiClient::Shared {
  asio::any_io_executor executor;          // sockets and timers are created on it
  ApiServerConfig config;
  ApiClientLimits limits;
  std::string server;                      // "https://host:port"
  std::unique_ptr<HttpsConnection> idle;   // at most one idle keep-alive connection
};

namespace {

using SharedPtr = std::shared_ptr<ApiClient::Shared>;

// Races `op` against a timer: Timeout naming `what` when the timer wins (the op is cancelled and has ended by
// then). A cancellation of the caller reaches both; it is reported as Cancelled.
template <typename T>
awaitable<Result<T>> with_deadline(awaitable<Result<T>> op, std::chrono::milliseconds timeout, std::string what) {
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  auto timer_wait = timer.async_wait(asio::as_tuple(asio::use_awaitable));
  auto raced = co_await (std::move(op) || std::move(timer_wait));
  if (raced.index() == 0) co_return std::move(std::get<0>(raced));
  if (std::get<0>(std::get<1>(raced))) co_return errorf(ErrorKind::Cancelled, "{}: cancelled", what);
  co_return errorf(ErrorKind::Timeout, "{}: no answer within {} ms", what, timeout.count());
}

struct Answer {
  int status = 0;
  std::string body;
};

// One request and its whole answer on `conn`. A 2xx body larger than `body_limit` is an error naming
// `limit_name`; other bodies (a Status) are cut at max_error_body_bytes.
awaitable<Result<Answer>> exchange_on(HttpsConnection& conn, http::verb method, std::string target,
                                      std::string content_type, std::string body, std::size_t body_limit,
                                      std::string_view limit_name, std::size_t max_error_body) {
  auto sent = co_await conn.send(method, target, std::move(content_type), std::move(body));
  if (!sent) co_return std::move(sent).error();
  auto status = co_await conn.read_head();
  if (!status) co_return std::move(status).error();
  Answer answer;
  answer.status = *status;
  const bool success = *status >= 200 && *status < 300;
  const std::size_t limit = success ? body_limit : max_error_body;
  HttpsConnection::BodySink sink = [&](std::string_view piece) -> Result<void> {
    if (answer.body.size() + piece.size() <= limit) {
      answer.body.append(piece);
      return ok();
    }
    if (!success) {  // keep the start of an error's Status, drop the rest
      answer.body.append(piece.substr(0, limit - answer.body.size()));
      return ok();
    }
    return errorf(ErrorKind::ResourceExhausted, "{} {} on {}: answer body larger than {} bytes ({})",
                  std::string_view(http::to_string(method)), target, conn.server(), limit, limit_name);
  };
  auto read = co_await conn.read_body(std::move(sink));
  if (!read) co_return std::move(read).error();
  co_return answer;
}

Error status_error(const ApiClient::Shared& shared, std::string_view method, std::string_view target,
                   const Answer& answer) {
  std::string text;
  if (auto doc = parse_json(answer.body, "status"); doc && doc->is_object()) {
    text = status_text(*doc);
  } else {
    text = std::string(utf8_prefix(answer.body, 256));
    if (text.empty()) text = "(no body)";
  }
  const std::string what = fmt::format("{} {} on {}", method, target.size() > 256 ? target.substr(0, 256) : target,
                                       shared.server);
  if (answer.status == 404) {
    Error e = errorf(ErrorKind::NotFound, "{}: 404 not found: {}", what, text);
    e.code = 404;
    return e;
  }
  std::string hint;
  if (answer.status == 401) {
    hint = shared.config.token_file.empty() ? " (no token file is configured)"
                                            : fmt::format(" (is the token in {} valid?)", shared.config.token_file);
  } else if (answer.status == 403) {
    hint = " (does the service account's RBAC allow this?)";
  } else if (answer.status == 410) {
    hint = " (the resourceVersion is too old: relist)";
  }
  Error e = errorf(ErrorKind::HttpStatus, "{}: the API server answered {}: {}{}", what, answer.status, text, hint);
  e.code = answer.status;
  return e;
}

awaitable<Result<std::unique_ptr<HttpsConnection>>> connect(const SharedPtr& shared) {
  auto open = HttpsConnection::open(shared->executor, shared->config, shared->limits);
  co_return co_await with_deadline(std::move(open), shared->limits.connect_timeout,
                                   fmt::format("connect to API server {}", shared->server));
}

// One request on the shared keep-alive connection (or a new one), retried once on a new connection when a
// reused one fails before any answer byte.
awaitable<Result<Answer>> request(SharedPtr shared, http::verb method, std::string target, std::string content_type,
                                  std::string body, std::size_t body_limit, std::string_view limit_name) {
  const std::string what = fmt::format("{} {} on {}", std::string_view(http::to_string(method)), target, shared->server);
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<HttpsConnection> conn = std::move(shared->idle);
    const bool reused = conn != nullptr;
    if (!conn) {
      auto opened = co_await connect(shared);
      if (!opened) co_return std::move(opened).error();
      conn = std::move(*opened);
    }
    auto exchange = exchange_on(*conn, method, target, content_type, body, body_limit, limit_name,
                                shared->limits.max_error_body_bytes);
    auto answer = co_await with_deadline(std::move(exchange), shared->limits.request_timeout, what);
    if (!answer) {
      const ErrorKind kind = answer.error().kind;
      const bool stale = kind == ErrorKind::Closed || kind == ErrorKind::Io || kind == ErrorKind::TlsHandshake;
      if (reused && attempt == 0 && !conn->answer_started() && stale) {
        spdlog::debug("kube: {}: idle connection was closed ({}); retrying on a new one", what, answer.error());
        continue;
      }
      co_return std::move(answer).error();
    }
    if (conn->reusable() && !shared->idle) shared->idle = std::move(conn);
    co_return std::move(*answer);
  }
}

std::string with_query(std::string_view path, std::string_view query, std::string_view more) {
  std::string target(path);
  if (!query.empty() || !more.empty()) target += '?';
  target.append(query);
  if (!query.empty() && !more.empty()) target += '&';
  target.append(more);
  return target;
}

awaitable<Result<ListResult>> list_impl(SharedPtr shared, std::string path, std::string query) {
  ListResult out;
  std::string next;  // continue token
  const std::string what = fmt::format("list {} on {}", path, shared->server);
  for (std::uint32_t page = 0;; ++page) {
    if (page >= shared->limits.max_list_pages) {
      co_return errorf(ErrorKind::ResourceExhausted, "{}: more than {} pages (max_list_pages)", what,
                       shared->limits.max_list_pages);
    }
    std::string paging = fmt::format("limit={}", shared->limits.list_page_size);
    if (!next.empty()) paging += "&continue=" + query_escape(next);
    const std::string target = with_query(path, query, paging);
    auto answer = co_await request(shared, http::verb::get, target, "", "", shared->limits.max_list_page_bytes,
                                   "max_list_page_bytes");
    if (!answer) co_return std::move(answer).error();
    if (answer->status != 200) co_return status_error(*shared, "GET", target, *answer);
    auto doc = parse_json(answer->body, what);
    if (!doc) co_return std::move(doc).error();
    json::object* list = doc->if_object();
    if (list == nullptr) co_return errorf(ErrorKind::InvalidArgument, "{}: expected an object, got {}", what, describe_json(*doc));
    auto reader = JsonObjectReader::open(*doc, what);
    if (!reader) co_return std::move(reader).error();
    auto items = reader->array("items", false);
    if (!items) co_return std::move(items).error();
    const json::value* metadata = reader->find("metadata");
    if (metadata == nullptr) co_return errorf(ErrorKind::InvalidArgument, "{}: metadata: missing", what);
    auto meta = JsonObjectReader::open(*metadata, what + ": metadata");
    if (!meta) co_return std::move(meta).error();
    auto rv = meta->required_string("resourceVersion");
    if (!rv) co_return std::move(rv).error();
    auto cont = meta->optional_string("continue");
    if (!cont) co_return std::move(cont).error();
    if (*items != nullptr) {
      json::array& array = list->at("items").as_array();
      out.items.reserve(out.items.size() + array.size());
      for (std::size_t i = 0; i < array.size(); ++i) {
        json::object* item = array[i].if_object();
        if (item == nullptr) {
          co_return errorf(ErrorKind::InvalidArgument, "{}: items[{}]: expected an object, got {}", what, i,
                           describe_json(array[i]));
        }
        drop_managed_fields(*item);
        out.items.push_back(std::move(*item));
      }
    }
    out.resource_version = std::move(*rv);
    if (cont->empty()) break;
    if (*cont == next) co_return errorf(ErrorKind::InvalidArgument, "{}: the server repeated continue token '{}'", what, *cont);
    next = std::move(*cont);
  }
  co_return out;
}

awaitable<Result<json::value>> get_impl(SharedPtr shared, std::string path) {
  auto answer = co_await request(shared, http::verb::get, path, "", "", shared->limits.max_list_page_bytes,
                                 "max_list_page_bytes");
  if (!answer) co_return std::move(answer).error();
  if (answer->status != 200) co_return status_error(*shared, "GET", path, *answer);
  auto doc = parse_json(answer->body, fmt::format("GET {} on {}", path, shared->server));
  if (!doc) co_return std::move(doc).error();
  if (json::object* o = doc->if_object()) drop_managed_fields(*o);
  co_return std::move(*doc);
}

awaitable<Result<void>> merge_patch_impl(SharedPtr shared, std::string path, std::string body) {
  auto answer = co_await request(shared, http::verb::patch, path, "application/merge-patch+json", std::move(body),
                                 shared->limits.max_list_page_bytes, "max_list_page_bytes");
  if (!answer) co_return std::move(answer).error();
  if (answer->status < 200 || answer->status >= 300) co_return status_error(*shared, "PATCH", path, *answer);
  co_return ok();
}

// The body of a watch: lines -> events -> on_event, until the stream ends or a line is refused.
awaitable<Result<void>> watch_body(HttpsConnection& conn, std::string what, std::size_t max_line,
                                   const std::function<void(WatchEvent)>& on_event) {
  LineSplitter splitter(max_line);
  const LineSplitter::OnLine on_line = [&](std::string_view line) -> Result<void> {
    auto event = parse_watch_event(line);
    if (!event) return make_error(ErrorKind::InvalidArgument, fmt::format("{}: {}", what, event.error().context));
    if (event->type == WatchEvent::Type::Error) {
      const int code = status_code(event->object);
      Error e = errorf(ErrorKind::HttpStatus, "{}: the server ended the watch with an ERROR event (code {}): {}{}", what,
                       code, status_text(event->object), code == 410 ? " (the resourceVersion is too old: relist)" : "");
      e.code = code != 0 ? code : 500;
      return e;
    }
    on_event(std::move(*event));
    return ok();
  };
  const HttpsConnection::BodySink sink = [&](std::string_view piece) -> Result<void> {
    auto fed = splitter.feed(piece, on_line);
    if (!fed && fed.error().kind == ErrorKind::ResourceExhausted) {
      return make_error(ErrorKind::ResourceExhausted, fmt::format("{}: {} (max_event_line_bytes)", what, fed.error().context));
    }
    return fed;
  };
  auto read = co_await conn.read_body(sink);
  if (!read) co_return read;
  co_return splitter.finish(on_line);
}

awaitable<Result<void>> watch_head(HttpsConnection& conn, const SharedPtr& shared, std::string target) {
  auto answer_head = co_await conn.send(http::verb::get, target, "", "");
  if (!answer_head) co_return answer_head;
  auto status = co_await conn.read_head();
  if (!status) co_return std::move(status).error();
  if (*status == 200) co_return ok();
  Answer answer{*status, {}};
  const std::size_t limit = shared->limits.max_error_body_bytes;
  HttpsConnection::BodySink sink = [&](std::string_view piece) -> Result<void> {
    answer.body.append(piece.substr(0, limit - std::min(limit, answer.body.size())));
    return ok();
  };
  auto read = co_await conn.read_body(std::move(sink));
  if (!read) co_return read;
  co_return status_error(*shared, "GET", target, answer);
}

awaitable<Result<void>> watch_impl(SharedPtr shared, std::string path, std::string query,
                                   std::function<void(WatchEvent)> on_event) {
  const std::string target = with_query(path, query, "watch=true");
  const std::string what = fmt::format("watch {} on {}", path, shared->server);
  auto opened = co_await connect(shared);
  if (!opened) co_return std::move(opened).error();
  std::unique_ptr<HttpsConnection> conn = std::move(*opened);  // this watch's own; closed when it ends
  auto head = watch_head(*conn, shared, target);
  auto started = co_await with_deadline(std::move(head), shared->limits.request_timeout, what);
  if (!started) co_return started;
  auto body = watch_body(*conn, what, shared->limits.max_event_line_bytes, on_event);
  co_return co_await with_deadline(std::move(body), shared->limits.watch_timeout, what);
}

}  // namespace

bool is_gone(const Error& e) noexcept { return e.kind == ErrorKind::HttpStatus && e.code == 410; }

std::string query_escape(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  return out;
}

ApiClient::ApiClient(asio::any_io_executor executor, ApiServerConfig config, ApiClientLimits limits)
    : shared_(std::make_shared<Shared>()) {
  shared_->executor = std::move(executor);
  shared_->server = "https://" + config.authority();
  shared_->config = std::move(config);
  shared_->limits = limits;
}

awaitable<Result<ListResult>> ApiClient::list(std::string path, std::string query) {
  return list_impl(shared_, std::move(path), std::move(query));
}

awaitable<Result<json::value>> ApiClient::get(std::string path) { return get_impl(shared_, std::move(path)); }

awaitable<Result<void>> ApiClient::merge_patch(std::string path, std::string body) {
  return merge_patch_impl(shared_, std::move(path), std::move(body));
}

awaitable<Result<void>> ApiClient::watch(std::string path, std::string query, std::function<void(WatchEvent)> on_event) {
  return watch_impl(shared_, std::move(path), std::move(query), std::move(on_event));
}

const ApiServerConfig& ApiClient::config() const noexcept { return shared_->config; }
const ApiClientLimits& ApiClient::limits() const noexcept { return shared_->limits; }

}  // namespace ambient::cni::kube
