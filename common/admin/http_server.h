#pragma once
// HttpServer: a small HTTP/1.1 server (Boost.Beast on net::listen/accept) for the admin (15000),
// metrics (15020) and readiness (15021) ports. It runs on one executor, the control thread's
// io_context; handlers are synchronous, run on that thread and must be cheap (admin work).
//
// Behaviour:
//  - Routes match method + exact path (the target before '?'); handlers get the query string.
//    Unknown path -> 404; known path with another method -> 405 with an Allow header.
//  - Limits (HttpServerOptions): request line + headers <= max_header_bytes (64 KiB) else 431, body
//    <= max_body_bytes (1 MiB) else 413, anything unparsable -> 400. After these the connection is
//    closed the lingering way: our FIN goes first, then what the client still sends is read and dropped
//    (up to 1 MiB or 1 s), so the client reads the response instead of a reset.
//  - Every request must arrive completely within read_timeout (30 s) of the previous response (or of
//    the accept); a slow or idle connection is closed then. Writes get the same bound.
//  - Keep-alive per HTTP/1.1 (HTTP/1.0 and "Connection: close" close after the response).
//  - At most max_connections (64) connections at once; more are accepted and closed at once.
//  - A handler that throws gets a 500.
//
// Contract: route() before listen() (or on the executor). stop() closes the listener and every open
// connection; call it on the executor's thread, or while its io_context is not running. The destructor
// calls stop(). Coroutines still queued keep the server's state alive until they finish. The
// io_context must outlive the HttpServer (the listener belongs to it).
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"

namespace ambient::admin {

struct Request {
  std::string method;  // "GET", as sent (methods are case-sensitive)
  std::string target;  // "/logging?level=debug"
  std::string path;    // "/logging"
  std::string query;   // "level=debug" (no '?'; empty when none)
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in arrival order
  std::string body;

  // First value of header `name` (case-insensitive); empty when absent.
  std::string_view header(std::string_view name) const;
  // Value of query parameter `name`, form-decoded (%XX, '+' = space); "" for "?name" without '=';
  // nullopt when absent.
  std::optional<std::string> query_param(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers

  static Response text(int status, std::string body);
};

using Handler = std::function<Response(const Request&)>;

struct HttpServerOptions {
  std::size_t max_header_bytes = 64 * 1024;       // request line + header fields
  std::size_t max_body_bytes = 1024 * 1024;
  std::chrono::milliseconds read_timeout{30'000};  // per request (and per response write)
  std::size_t max_connections = 64;
  std::string name = "admin";                      // for logs: "admin", "metrics", "readiness"
};

class HttpServer {
 public:
  explicit HttpServer(boost::asio::any_io_executor executor, HttpServerOptions options = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Adds (or replaces) the handler of `method` on `path`.
  void route(std::string method, std::string path, Handler handler);

  // Binds `endpoint` (port 0 picks one), starts accepting; returns the bound endpoint.
  Result<boost::asio::ip::tcp::endpoint> listen(const boost::asio::ip::tcp::endpoint& endpoint);

  void stop();

  std::size_t open_connections() const noexcept;

  struct State;  // shared with the accept and connection coroutines

 private:
  std::shared_ptr<State> state_;
};

}  // namespace ambient::admin
