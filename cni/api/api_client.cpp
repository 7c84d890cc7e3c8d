#include "cni/api/api_client.h"

#include <exception>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/value.hpp>

#include "cni/api/json_fields.h"

namespace ambient::cni {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using unix_socket = asio::local::stream_protocol;
using boost::system::error_code;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxErrorBodyShown = 1024;

// What a request needs, copied into the coroutine frame.
struct Exchange {
  std::string socket_path;
  std::chrono::milliseconds timeout;
  std::size_t max_response_bytes;
  http::verb method;
  std::string target;
  std::string body;
};

Error transport_error(const Exchange& x, std::string_view op, const error_code& ec) {
  const std::string what = fmt::format("{} {} via {}: {}", std::string_view(http::to_string(x.method)), x.target,
                                       x.socket_path, op);
  if (ec == beast::error::timeout) {
    return errorf(ErrorKind::Timeout, "{}: no reply within {} ms", what, x.timeout.count());
  }
  if (ec == http::error::body_limit) {
    return errorf(ErrorKind::ResourceExhausted, "{}: reply body larger than {} bytes", what, x.max_response_bytes);
  }
  if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message) {
    return errorf(ErrorKind::Parse, "{}: bad HTTP reply: {}", what, ec.message());
  }
  if (ec == asio::error::eof || ec == http::error::end_of_stream || ec == http::error::partial_message) {
    return errorf(ErrorKind::Closed, "{}: the agent closed the connection before replying", what);
  }
  Error e = errorf(ErrorKind::Io, "{}: {}", what, ec.message());
  e.code = ec.value();
  return e;
}

// The agent's error text: its {"error":".."} message, else the body (cut).
std::string error_text(const std::string& body) {
  auto doc = parse_json(body, "reply");
  if (doc && doc->is_object()) {
    if (const auto* e = doc->as_object().if_contains("error"); e != nullptr && e->is_string()) {
      return std::string(e->as_string().data(), e->as_string().size());
    }
  }
  if (body.size() > kMaxErrorBodyShown) return body.substr(0, kMaxErrorBodyShown) + "...";
  return body;
}

awaitable<void> run_exchange(Exchange x, std::optional<Result<std::string>>* out) {
  const auto executor = co_await asio::this_coro::executor;
  beast::basic_stream<unix_socket> stream(executor);
  stream.expires_after(x.timeout);  // one deadline for connect, write and read together

  auto [cec] = co_await stream.async_connect(unix_socket::endpoint(x.socket_path), kUseTuple);
  if (cec) {
    if (cec == boost::system::errc::no_such_file_or_directory || cec == asio::error::connection_refused) {
      out->emplace(errorf(ErrorKind::ConnectRefused, "agent socket {}: {} (is the node agent running?)",
                          x.socket_path, cec.message()));
    } else {
      out->emplace(transport_error(x, "connect", cec));
    }
    co_return;
  }

  http::request<http::string_body> req{x.method, x.target, 11};
  req.set(http::field::host, "localhost");
  req.set(http::field::user_agent, "ambient-cni");
  if (x.method == http::verb::post) req.set(http::field::content_type, "application/json");
  req.keep_alive(false);
  req.body() = std::move(x.body);
  req.prepare_payload();
  auto [wec, wn] = co_await http::async_write(stream, req, kUseTuple);
  if (wec) {
    out->emplace(transport_error(x, "write", wec));
    co_return;
  }

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(static_cast<std::uint64_t>(x.max_response_bytes));
  auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kUseTuple);
  if (rec) {
    out->emplace(transport_error(x, "read", rec));
    co_return;
  }
  auto res = parser.release();
  const int status = static_cast<int>(res.result_int());
  if (status != 200) {
    Error e = errorf(ErrorKind::HttpStatus, "{} {}: the agent answered {}: {}",
                     std::string_view(http::to_string(x.method)), x.target, status, error_text(res.body()));
    e.code = status;
    out->emplace(std::move(e));
    co_return;
  }
  out->emplace(std::move(res.body()));
}

}  // namespace

ApiClient::ApiClient(ApiClientOptions options) : options_(std::move(options)) {}

Result<std::string> ApiClient::post(std::string_view path, std::string_view json_body) const {
  return request(true, path, json_body);
}

Result<std::string> ApiClient::get(std::string_view path) const { return request(false, path, {}); }

Result<std::string> ApiClient::request(bool post, std::string_view path, std::string_view body) const {
  Exchange x{options_.socket_path,
             options_.timeout,
             options_.max_response_bytes,
             post ? http::verb::post : http::verb::get,
             std::string(path),
             std::string(body)};
  asio::io_context io(1);
  std::optional<Result<std::string>> out;
  std::exception_ptr failure;
  asio::co_spawn(io, run_exchange(std::move(x), &out), [&failure](std::exception_ptr e) { failure = e; });
  // The stream's deadline ends the exchange; the margin only guards against a bug there.
  io.run_for(options_.timeout + std::chrono::seconds(1));
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      return errorf(ErrorKind::Internal, "agent request {}: {}", path, e.what());
    } catch (...) {
      return errorf(ErrorKind::Internal, "agent request {}: unknown exception", path);
    }
  }
  if (!out) {
    return errorf(ErrorKind::Timeout, "agent request {}: no reply within {} ms", path, options_.timeout.count());
  }
  return std::move(*out);
}

}  // namespace ambient::cni
