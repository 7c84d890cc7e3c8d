#pragma once
// Reading one HTTP/1.1 request with Boost.Beast under explicit limits, and closing politely: shared by every
// small HTTP server here (the admin/metrics/readiness server on TCP, the node agent's API on a unix socket).
// Templates over the Beast stream type (beast::tcp_stream, beast::basic_stream<local::stream_protocol>).
#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

namespace ambient::admin {

struct HttpReadLimits {
  std::size_t max_header_bytes = 8 * 1024;   // request line + headers: more is 431
  std::size_t max_body_bytes = 64 * 1024;    // more is 413
  std::chrono::milliseconds timeout{10'000};  // the whole request must arrive within this
};

struct HttpRead {
  std::optional<boost::beast::http::request<boost::beast::http::string_body>> request;
  int status = 0;      // no request: the status to answer (400, 413, 431), or 0 when nobody is left to answer
  std::string reason;  // ... and why, for the answer's body
};

// The status to answer a failed read with, or 0 when there is nobody to answer (EOF, reset, timeout, cancelled).
inline int status_for_read_error(const boost::system::error_code& ec) {
  namespace http = boost::beast::http;
  if (ec.category() != http::make_error_code(http::error::end_of_stream).category()) return 0;
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) return 0;
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) return 431;
  if (ec == http::error::body_limit) return 413;
  return 400;
}

// One request from `stream`; `buffer` must live across calls on one connection (it holds pipelined bytes).
template <typename Stream>
boost::asio::awaitable<HttpRead> read_request(Stream& stream, boost::beast::flat_buffer& buffer, HttpReadLimits limits) {
  namespace http = boost::beast::http;
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  parser.body_limit(static_cast<std::uint64_t>(limits.max_body_bytes));
  stream.expires_after(limits.timeout);
  auto [ec, n] = co_await http::async_read(stream, buffer, parser, boost::asio::as_tuple(boost::asio::use_awaitable));
  HttpRead out;
  if (!ec) {
    out.request.emplace(parser.release());
    co_return out;
  }
  out.status = status_for_read_error(ec);
  out.reason = out.status == 431   ? fmt::format("request header fields larger than {} bytes", limits.max_header_bytes)
               : out.status == 413 ? fmt::format("request body larger than {} bytes", limits.max_body_bytes)
                                   : fmt::format("bad HTTP request: {}", ec.message());
  co_return out;
}

// Our FIN first, then drain what the client still sends (at most max_bytes, for at most `linger`), then close:
// closing with unread bytes makes the peer's read fail with a reset, possibly before it reads our answer.
template <typename Stream>
boost::asio::awaitable<void> linger_close(Stream& stream, std::chrono::milliseconds linger, std::size_t max_bytes = 64 * 1024) {
  boost::system::error_code ec;
  stream.socket().shutdown(Stream::socket_type::shutdown_send, ec);
  stream.expires_after(linger);
  std::array<char, 4096> sink;
  std::size_t drained = 0;
  while (!ec && drained < max_bytes) {
    auto [rec, n] = co_await stream.async_read_some(boost::asio::buffer(sink), boost::asio::as_tuple(boost::asio::use_awaitable));
    ec = rec;
    drained += n;
  }
  stream.close();
}

}  // namespace ambient::admin
