#pragma once
// Incremental HTTP/1.1 request and response parsers (sans-I/O), on Boost.Beast's basic_parser (the Beast
// part lives in parser.cpp, so this header does not pull Beast in).
//
// Use:
//   feed(bytes) -> consumed: the caller drops `consumed` bytes and presents the rest again with more. While
//     the head is incomplete it may consume part of it (Beast consumes complete lines) or nothing; 0
//     consumed means "need more input" or, after the head, "body buffer full: drain body() first".
//   head_done() / head(): valid once the head is parsed.
//   body() / consume_body(n): decoded body bytes (de-chunked). feed() stops consuming input while
//     kBodyBufferLimit (64 KiB) bytes wait here, so memory stays bounded whatever the body length.
//   message_done(): the message is complete (body fully decoded; body() may still hold bytes to drain).
//   trailers(): the trailer fields of a chunked body (lower-cased names), valid once message_done().
//   reset(): ready for the next message on the same connection (input after the message stays with
//     the caller: feed() never consumes past the end of a message).
// Errors are sticky: after a failed feed() every call fails the same way until reset(). See codec.h for
// the status each failure carries.
//
// Responses: 1xx (100 Continue, 101 Switching Protocols), 204 and 304 have no body; neither has the answer
// to a HEAD request (set_head_request(true) before feeding). A 1xx is returned as a head of its own with
// message_done() true: the caller forwards it, reset()s and parses the final response. A response with
// neither Content-Length nor chunked ends at EOF: feed_eof() completes it.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "waypoint/http1/codec.h"

namespace ambient::waypoint::http1 {

namespace detail {
template <bool isRequest>
class Engine;
}

class RequestParser {
 public:
  explicit RequestParser(Limits limits = {});
  ~RequestParser();
  RequestParser(RequestParser&&) noexcept;
  RequestParser& operator=(RequestParser&&) noexcept;

  Result<std::size_t> feed(std::span<const std::uint8_t> in);
  // EOF from the peer: ok when the message is complete, else an ErrorKind::Closed error.
  Result<void> feed_eof();

  bool started() const;  // some byte of this message was consumed
  bool head_done() const;
  const RequestHead& head() const;
  std::span<const std::uint8_t> body() const;
  void consume_body(std::size_t n);
  bool message_done() const;
  const h2::Headers& trailers() const;
  void reset();

 private:
  std::unique_ptr<detail::Engine<true>> e_;
};

class ResponseParser {
 public:
  explicit ResponseParser(Limits limits = {});
  ~ResponseParser();
  ResponseParser(ResponseParser&&) noexcept;
  ResponseParser& operator=(ResponseParser&&) noexcept;

  // The response answers a HEAD request: no body whatever its headers say. Before the first feed() of a
  // message (reset() clears it).
  void set_head_request(bool head_request);
  Result<std::size_t> feed(std::span<const std::uint8_t> in);
  // EOF from the peer: completes a body delimited by EOF; ok when the message is complete; else an
  // ErrorKind::Closed error.
  Result<void> feed_eof();

  bool started() const;
  bool head_done() const;
  const ResponseHead& head() const;
  std::span<const std::uint8_t> body() const;
  void consume_body(std::size_t n);
  bool message_done() const;
  const h2::Headers& trailers() const;
  void reset();

 private:
  std::unique_ptr<detail::Engine<false>> e_;
};

}  // namespace ambient::waypoint::http1
