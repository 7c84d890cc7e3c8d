#include "cni/kube/https_connection.h"

#include <algorithm>
#include <array>
#include <span>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>

#include "cni/kube/kube_tls.h"
#include "common/net/endpoint.h"

namespace ambient::cni::kube {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::ip::tcp;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kUserAgent = "ambient-cni-agent";

// Request-line and header values: visible ASCII only (no space, CR, LF): nothing can be smuggled into the
// request through a path, a query or a content type.
bool is_visible_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

Error connect_error(const std::string& server, const boost::system::error_code& ec) {
  if (ec == asio::error::operation_aborted) return errorf(ErrorKind::Cancelled, "connect to {}: cancelled", server);
  if (ec == asio::error::connection_refused || ec == asio::error::host_unreachable ||
      ec == asio::error::network_unreachable) {
    Error e = errorf(ErrorKind::ConnectRefused, "connect to API server {}: {}", server, ec.message());
    e.code = ec.value();
    return e;
  }
  Error e = errorf(ErrorKind::Io, "connect to API server {}: {}", server, ec.message());
  e.code = ec.value();
  return e;
}

}  // namespace

HttpsConnection::HttpsConnection(tls::TlsStream stream, ApiServerConfig config, ApiClientLimits limits,
                                 std::string token)
    : stream_(std::move(stream)),
      config_(std::move(config)),
      limits_(limits),
      token_(std::move(token)),
      server_("https://" + config_.authority()) {}

awaitable<Result<std::unique_ptr<HttpsConnection>>> HttpsConnection::open(asio::any_io_executor executor,
                                                                           ApiServerConfig config,
                                                                           ApiClientLimits limits) {
  const std::string server = "https://" + config.authority();
  std::string token;
  if (!config.token_file.empty()) {
    auto read = read_token_file(config.token_file);
    if (!read) co_return std::move(read).error();
    token = std::move(*read);
  }
  auto ctx = make_api_client_context(config.ca_file);
  if (!ctx) co_return std::move(ctx).error();
  auto ssl = new_api_client_ssl(ctx->get(), config.verified_name());  // the SSL holds its own ref to ctx
  if (!ssl) co_return std::move(ssl).error();

  std::vector<tcp::endpoint> endpoints;
  boost::system::error_code aec;
  const auto ip = asio::ip::make_address(config.host, aec);
  if (!aec) {
    endpoints.emplace_back(ip, config.port);
  } else {
    tcp::resolver resolver(executor);
    auto [rec, results] = co_await resolver.async_resolve(config.host, std::to_string(config.port), kUseTuple);
    if (rec) {
      co_return errorf(rec == asio::error::operation_aborted ? ErrorKind::Cancelled : ErrorKind::ConnectRefused,
                       "resolve API server host {}: {}", config.host, rec.message());
    }
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  }
  tcp::socket socket(executor);
  auto [cec, connected] = co_await asio::async_connect(socket, endpoints, kUseTuple);
  if (cec) co_return connect_error(server, cec);
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  socket.set_option(asio::socket_base::keep_alive(true), ignored);  // a watch can sit idle for minutes

  tls::TlsStream stream(std::move(socket), std::move(*ssl));
  const std::string peer = fmt::format("API server {} ({}, CA file {})", server, net::format_endpoint(connected),
                                       config.ca_file);
  auto handshake = co_await run_handshake(stream, limits.connect_timeout, peer);
  if (!handshake) co_return std::move(handshake).error();
  co_return std::unique_ptr<HttpsConnection>(
      new HttpsConnection(std::move(stream), std::move(config), limits, std::move(token)));
}

awaitable<Result<void>> HttpsConnection::send(http::verb method, std::string target, std::string content_type,
                                              std::string body) {
  const std::string_view verb = http::to_string(method);
  last_request_ = fmt::format("{} {}", verb, target.size() > 256 ? target.substr(0, 256) + "..." : target);
  if (target.empty() || target.front() != '/' || !is_visible_ascii(target)) {
    co_return errorf(ErrorKind::InvalidArgument, "{}: the target must be an origin-form path of visible ASCII",
                     last_request_);
  }
  if (!is_visible_ascii(content_type)) {
    co_return errorf(ErrorKind::InvalidArgument, "{}: content type '{}' is not visible ASCII", last_request_,
                     content_type);
  }
  std::string request;
  request.reserve(256 + target.size() + token_.size() + body.size());
  request.append(verb).append(" ").append(target).append(" HTTP/1.1\r\n");
  request.append("Host: ").append(config_.authority()).append("\r\n");
  request.append("User-Agent: ").append(kUserAgent).append("\r\n");
  request.append("Accept: application/json\r\n");
  if (!token_.empty()) request.append("Authorization: Bearer ").append(token_).append("\r\n");
  if (!body.empty() || method == http::verb::patch || method == http::verb::post || method == http::verb::put) {
    if (!content_type.empty()) request.append("Content-Type: ").append(content_type).append("\r\n");
    request.append(fmt::format("Content-Length: {}\r\n", body.size()));
  }
  request.append("\r\n").append(body);

  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(limits_.max_head_bytes, UINT32_MAX)));
  parser_->body_limit(boost::none);  // bodies go to a sink that enforces its own bound (a watch never ends)
  answer_started_ = false;
  const auto bytes = std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(request.data()), request.size());
  auto written = co_await stream_.write_all(bytes);
  if (!written) {
    co_return make_error(written.error().kind, fmt::format("{} to {}: {}", last_request_, server_, written.error().context),
                         written.error().code);
  }
  co_return ok();
}

Error HttpsConnection::parse_error(std::string_view while_doing, const boost::system::error_code& ec) const {
  if (ec == http::error::header_limit) {
    return errorf(ErrorKind::ResourceExhausted, "{} to {}: answer head larger than {} bytes", last_request_, server_,
                  limits_.max_head_bytes);
  }
  if (ec == http::error::partial_message) {
    return errorf(ErrorKind::Closed, "{} to {}: the server closed the connection while {}", last_request_, server_,
                  while_doing);
  }
  return errorf(ErrorKind::Parse, "{} to {}: bad HTTP answer while {}: {}", last_request_, server_, while_doing,
                ec.message());
}

awaitable<Result<std::size_t>> HttpsConnection::fill() {
  const std::size_t cap = std::max<std::size_t>(limits_.max_head_bytes, 64 * 1024) + kReadChunk;
  if (buffer_.size() >= cap) {
    co_return errorf(ErrorKind::ResourceExhausted,
                     "{} to {}: more than {} bytes without a complete header or chunk header", last_request_, server_,
                     cap);
  }
  const auto space = buffer_.prepare(kReadChunk);
  auto n = co_await stream_.read_some(std::span<std::uint8_t>(static_cast<std::uint8_t*>(space.data()), space.size()));
  if (!n) {
    co_return make_error(n.error().kind, fmt::format("{} to {}: {}", last_request_, server_, n.error().context),
                         n.error().code);
  }
  buffer_.commit(*n);
  if (*n > 0) answer_started_ = true;
  co_return *n;
}

awaitable<Result<int>> HttpsConnection::read_head() {
  if (!parser_) co_return errorf(ErrorKind::Internal, "read_head without a request on {}", server_);
  for (;;) {
    if (buffer_.size() > 0) {
      boost::system::error_code ec;
      const std::size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (parser_->is_header_done()) co_return static_cast<int>(parser_->get().result_int());
      if (ec && ec != http::error::need_more) co_return parse_error("reading the answer head", ec);
      if (used > 0 && !ec) continue;
    }
    auto n = co_await fill();
    if (!n) co_return std::move(n).error();
    if (*n == 0) {
      co_return errorf(ErrorKind::Closed, "{} to {}: the server closed the connection {}", last_request_, server_,
                       answer_started_ ? "in the middle of the answer head" : "without answering");
    }
  }
}

awaitable<Result<void>> HttpsConnection::read_body(BodySink sink) {
  if (!parser_ || !parser_->is_header_done()) co_return errorf(ErrorKind::Internal, "read_body before read_head on {}", server_);
  std::array<char, kReadChunk> piece;
  bool want_more = buffer_.size() == 0;
  while (!parser_->is_done()) {
    if (want_more) {
      auto n = co_await fill();
      if (!n) co_return std::move(n).error();
      want_more = false;
      if (*n == 0) {
        boost::system::error_code ec;
        parser_->put_eof(ec);  // completes a body delimited by the end of the connection
        if (ec) co_return parse_error("reading the body", ec);
        break;
      }
    }
    auto& body = parser_->get().body();
    body.data = piece.data();
    body.size = piece.size();
    body.more = true;
    boost::system::error_code ec;
    const std::size_t used = parser_->put(buffer_.data(), ec);
    buffer_.consume(used);
    const std::size_t got = piece.size() - body.size;
    body.data = nullptr;
    if (got > 0) {
      auto sunk = sink(std::string_view(piece.data(), got));
      if (!sunk) co_return sunk;
    }
    if (ec == http::error::need_buffer) continue;  // `piece` was full; more is parsed already
    if (ec == http::error::need_more) {
      want_more = true;
      continue;
    }
    if (ec) co_return parse_error("reading the body", ec);
    if (buffer_.size() == 0 || (used == 0 && got == 0)) want_more = !parser_->is_done();
  }
  ++answered_;
  co_return ok();
}

bool HttpsConnection::reusable() const {
  return parser_ && parser_->is_done() && parser_->keep_alive() && buffer_.size() == 0;
}

}  // namespace ambient::cni::kube
