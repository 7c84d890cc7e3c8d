#pragma once
// HttpsConnection: one HTTP/1.1 connection over TLS to the API server (ApiClient's transport).
//
//   open() -> send() -> read_head() -> read_body() [-> send() ... when reusable()]
//
// Sans-I/O parsing: Boost.Beast's response parser is fed by hand from a TlsStream (common/tls), so the TLS
// stays BoringSSL on the socket and every buffer stays bounded:
//   - the head (status line + headers) <= limits.max_head_bytes (Beast's header_limit);
//   - the read buffer holds at most max(max_head_bytes, 64 KiB) + kReadChunk unparsed bytes (a chunk header
//     that never ends fills it: an error, not growth);
//   - the body is handed to a sink piece by piece (<= kReadChunk each); the sink bounds what it keeps.
// Chunked, Content-Length and close-delimited bodies all arrive through the same sink.
//
// No deadlines here: the caller races each exchange against a timer (with_deadline in api_client.cpp), and
// cancellation (a terminal cancellation of the awaiting coroutine) ends any pending read or write with
// ErrorKind::Cancelled. One coroutine at a time uses a connection.
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include "common/base/beast_http_parser.h"
#include <boost/beast/http/verb.hpp>

#include "cni/kube/api_client_limits.h"
#include "cni/kube/api_server_config.h"
#include "common/base/result.h"
#include "common/tls/tls_stream.h"

namespace ambient::cni::kube {

class HttpsConnection {
 public:
  // Bytes per read from the socket, and the most a body sink receives at once.
  static constexpr std::size_t kReadChunk = 16 * 1024;
  using BodySink = std::function<Result<void>(std::string_view piece)>;

  // Reads the token file, resolves the host (names only), connects and runs the TLS handshake (kube_tls.h;
  // the handshake alone is bounded by limits.connect_timeout, the caller bounds the whole). Errors name the
  // server and the step: ConnectRefused, TlsHandshake, Timeout, Io, NotFound/InvalidArgument (files).
  static boost::asio::awaitable<Result<std::unique_ptr<HttpsConnection>>> open(boost::asio::any_io_executor executor,
                                                                                ApiServerConfig config,
                                                                                ApiClientLimits limits);

  // Writes one request. `target` is origin-form ("/api/v1/pods?limit=500"); a body is sent with
  // `content_type` and Content-Length. InvalidArgument for a target or content type a request line or
  // header cannot carry.
  boost::asio::awaitable<Result<void>> send(boost::beast::http::verb method, std::string target,
                                            std::string content_type, std::string body);
  // Reads the answer's head; its status code.
  boost::asio::awaitable<Result<int>> read_head();
  // Hands the answer's body to `sink` until it ends (ok), the sink fails (its error), or the stream breaks.
  boost::asio::awaitable<Result<void>> read_body(BodySink sink);

  // After a complete answer: the connection may carry another request (keep-alive, nothing left unread).
  bool reusable() const;
  // Some byte of the current answer arrived: a failure before that on a reused connection is most likely the
  // server closing an idle keep-alive connection (the request may be retried on a new one).
  bool answer_started() const noexcept { return answer_started_; }
  // Requests answered completely on this connection.
  int answered() const noexcept { return answered_; }
  // "https://host:port" for errors.
  const std::string& server() const noexcept { return server_; }
  void close() noexcept { stream_.close(); }

 private:
  using Parser = boost::beast::http::response_parser<boost::beast::http::buffer_body>;

  HttpsConnection(tls::TlsStream stream, ApiServerConfig config, ApiClientLimits limits, std::string token);
  // Reads more bytes into buffer_ (EOF -> 0).
  boost::asio::awaitable<Result<std::size_t>> fill();
  Error parse_error(std::string_view while_doing, const boost::system::error_code& ec) const;

  tls::TlsStream stream_;
  ApiServerConfig config_;
  ApiClientLimits limits_;
  std::string token_;   // "" = no Authorization header
  std::string server_;  // "https://host:port"
  boost::beast::flat_buffer buffer_;  // received, not yet parsed
  std::optional<Parser> parser_;      // the current answer's
  std::string last_request_;          // "GET /api/v1/pods?..." for errors
  bool answer_started_ = false;
  int answered_ = 0;
};

}  // namespace ambient::cni::kube
