#pragma once
// Reader: HTTP/1.1 messages read from a net::ByteStream through the sans-I/O parsers (parser.h), with a
// bounded input buffer (kBodyBufferLimit + Limits::max_header_bytes by default). One Reader per
// connection direction: a server side reads requests, a client side reads responses (one Reader may do
// both in turn, as long as each message is read to its end first). The input buffer starts at 4 KiB and
// grows (doubling) only while an element does not fit, up to its bound; the parser's body buffer adds at
// most kBodyBufferLimit.
//
//   read_request_head()  -> const RequestHead*: the next request's head. nullptr = the peer closed the
//                           connection cleanly before the first byte of a message (the normal end of a
//                           keep-alive connection). EOF inside a head: ErrorKind::Closed. Parse failures
//                           carry the status to answer (codec.h, answer_status()).
//   read_body()          -> the next piece of the decoded body; an empty span = end of the message (then
//                           trailers() holds a chunked body's trailers). A piece stays valid until the
//                           next call on the Reader. EOF inside a body: ErrorKind::Closed.
//   read_response_head(head_request) -> the same for responses (head_request: it answers a HEAD). A 1xx
//                           is a head of its own with an empty body: forward it and call again for the
//                           final response. A response delimited by EOF ends at EOF (read_body: empty).
//   take_buffered()      -> bytes read from the stream but not parsed (after an Upgrade request, a 101 or a
//                           CONNECT 2xx they belong to the tunnel); valid until the next call.
// Bytes after a complete message stay buffered for the next one (pipelining). Calling read_*_head()
// before the previous message's body was read to its end is an ErrorKind::InvalidArgument error.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "common/base/result.h"
#include "common/net/byte_stream.h"
#include "waypoint/http1/codec.h"
#include "waypoint/http1/parser.h"

namespace ambient::waypoint::http1 {

template <net::ByteStream S>
class Reader {
 public:
  explicit Reader(S& stream, Limits limits = {}, std::size_t buffer_size = 0)
      : stream_(stream),
        req_(limits),
        resp_(limits),
        cap_(buffer_size != 0 ? buffer_size : kBodyBufferLimit + limits.max_header_bytes) {}

  boost::asio::awaitable<Result<const RequestHead*>> read_request_head() {
    auto begun = begin_message(Mode::Request, false);
    if (!begun) co_return std::move(begun).error();
    for (;;) {
      auto fed = feed();
      if (!fed) co_return std::move(fed).error();
      if (req_.head_done()) co_return &req_.head();
      auto more = co_await fill();
      if (!more) co_return std::move(more).error();
      if (!*more) {  // EOF
        if (!req_.started() && begin_ == end_) co_return static_cast<const RequestHead*>(nullptr);
        co_return make_error(ErrorKind::Closed, "HTTP/1.1: peer closed inside a request head");
      }
    }
  }

  boost::asio::awaitable<Result<const ResponseHead*>> read_response_head(bool head_request) {
    auto begun = begin_message(Mode::Response, head_request);
    if (!begun) co_return std::move(begun).error();
    for (;;) {
      auto fed = feed();
      if (!fed) co_return std::move(fed).error();
      if (resp_.head_done()) co_return &resp_.head();
      auto more = co_await fill();
      if (!more) co_return std::move(more).error();
      if (!*more) {
        if (!resp_.started() && begin_ == end_) co_return static_cast<const ResponseHead*>(nullptr);
        co_return make_error(ErrorKind::Closed, "HTTP/1.1: peer closed inside a response head");
      }
    }
  }

  boost::asio::awaitable<Result<std::span<const std::uint8_t>>> read_body() {
    using Piece = std::span<const std::uint8_t>;
    if (mode_ == Mode::None) co_return make_error(ErrorKind::InvalidArgument, "HTTP/1.1: read_body without a head");
    const bool request = mode_ == Mode::Request;
    if (request) req_.consume_body(last_piece_); else resp_.consume_body(last_piece_);
    last_piece_ = 0;
    for (;;) {
      Piece piece = request ? req_.body() : resp_.body();
      if (!piece.empty()) {
        last_piece_ = piece.size();
        co_return piece;
      }
      if (request ? req_.message_done() : resp_.message_done()) co_return Piece{};
      const std::size_t before = begin_;
      auto fed = feed();
      if (!fed) co_return std::move(fed).error();
      if (begin_ != before) continue;
      if (eof_) co_return make_error(ErrorKind::Closed, "HTTP/1.1: peer closed inside a body");
      auto more = co_await fill();
      if (!more) co_return std::move(more).error();
      if (!*more) {
        eof_ = true;
        auto done = request ? req_.feed_eof() : resp_.feed_eof();
        if (!done) co_return std::move(done).error();
      }
    }
  }

  // The current message was read to its end (its body fully handed out; true before the first message).
  bool message_done() const {
    if (mode_ == Mode::None) return true;
    const bool done = mode_ == Mode::Request ? req_.message_done() && req_.body().empty() : resp_.message_done() && resp_.body().empty();
    return done && last_piece_ == 0;
  }

  // The trailers of the last chunked body (valid once read_body() returned the empty span).
  const h2::Headers& trailers() const { return mode_ == Mode::Response ? resp_.trailers() : req_.trailers(); }

  std::span<const std::uint8_t> take_buffered() {
    std::span<const std::uint8_t> out(buf_.data() + begin_, end_ - begin_);
    begin_ = end_;
    return out;
  }

 private:
  enum class Mode { None, Request, Response };

  Result<void> begin_message(Mode mode, bool head_request) {
    const bool done = mode_ == Mode::None || (mode_ == Mode::Request ? req_.message_done() : resp_.message_done());
    if (!done || last_piece_ != 0 || (mode_ == Mode::Request ? !req_.body().empty() : !resp_.body().empty()))
      return make_error(ErrorKind::InvalidArgument, "HTTP/1.1: next message before the body was read to its end");
    mode_ = mode;
    if (mode == Mode::Request) {
      req_.reset();
    } else {
      resp_.reset();
      resp_.set_head_request(head_request);
    }
    return ok();
  }

  // Feeds the buffered bytes to the current parser.
  Result<void> feed() {
    if (begin_ == end_) return ok();
    std::span<const std::uint8_t> in(buf_.data() + begin_, end_ - begin_);
    auto n = mode_ == Mode::Request ? req_.feed(in) : resp_.feed(in);
    if (!n) return std::move(n).error();
    begin_ += *n;
    return ok();
  }

  // Reads more bytes from the stream: true = got some, false = EOF.
  boost::asio::awaitable<Result<bool>> fill() {
    if (eof_) co_return false;
    if (begin_ > 0) {  // compact
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ == buf_.size()) {
      if (buf_.size() >= cap_)
        co_return parse_error(431, "an element (head, chunk line, trailers) does not fit the input buffer");
      buf_.resize(std::min(cap_, std::max<std::size_t>(kInitialBuffer, buf_.size() * 2)));
    }
    std::span<std::uint8_t> room(buf_.data() + end_, buf_.size() - end_);
    auto n = co_await stream_.read_some(room);
    if (!n) co_return std::move(n).error();
    if (*n == 0) {
      eof_ = true;
      co_return false;
    }
    end_ += *n;
    co_return true;
  }

  static constexpr std::size_t kInitialBuffer = 4096;

  S& stream_;
  RequestParser req_;
  ResponseParser resp_;
  std::size_t cap_;                   // buf_ grows on demand up to this
  std::vector<std::uint8_t> buf_;
  std::size_t begin_ = 0, end_ = 0;  // unparsed input: buf_[begin_, end_)
  std::size_t last_piece_ = 0;       // body bytes handed out by the last read_body()
  Mode mode_ = Mode::None;
  bool eof_ = false;
};

}  // namespace ambient::waypoint::http1
