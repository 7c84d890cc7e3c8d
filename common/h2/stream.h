#pragma once
// Stream: one HTTP/2 stream of a Session, exposed as a ByteStream (common/net/byte_stream.h).
//
// Invariants (all on the session's io_context thread):
// - Received DATA is buffered here and the flow-control window is only returned to the peer
//   (nghttp2_session_consume) when read_some() hands the bytes to the caller, so the buffer never holds
//   more than the stream window: a slow reader slows the writer at the other end.
// - write_all() does not copy: nghttp2 reads the caller's buffer while write_all is suspended
//   (NGHTTP2_DATA_FLAG_NO_COPY), so a writer holds at most one buffer of its own, and write_all
//   returns when every byte is framed into the session's output batch (bounded by flow control).
// - shutdown_write() ends our side with END_STREAM (after pending data, or trailers when set).
//   read_some() returns 0 at the peer's END_STREAM (after the bytes before it); a RST_STREAM before
//   END_STREAM is a StreamReset error with the HTTP/2 code, whatever the code (NO_ERROR and CANCEL
//   included): a cut stream never reads as complete.
//   shutdown_write() after the peer's END_STREAM and a clean close (RST_STREAM NO_ERROR, RFC 9113 8.1) is ok.
// - The owner must end the stream: both directions finished, or close() (RST_STREAM CANCEL). close() takes
//   effect at once for this side: pending and later reads and writes fail without waiting for the frame.
// - A write_all() abandoned mid-way (its coroutine destroyed, e.g. the loser of an `||`) resets the stream,
//   since part of the buffer may already be framed; nghttp2 never keeps a pointer into a dead buffer.
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "common/base/result.h"
#include "common/h2/headers.h"
#include "common/h2/notify.h"
#include "common/h2/recv_queue.h"

namespace ambient::h2 {

class Session;

class Stream {
 public:
  Stream(std::shared_ptr<Session> session, boost::asio::any_io_executor ex);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  std::int32_t id() const noexcept { return id_; }
  // Server: the request; client: what we sent.
  const Headers& request_headers() const noexcept { return request_; }
  // Client: waits for the final response headers (or the stream's end). Server streams never wait.
  boost::asio::awaitable<Result<void>> wait_response(std::chrono::milliseconds timeout);
  const Headers& response_headers() const noexcept { return response_; }
  int status() const noexcept { return status_; }  // ":status" of the response, 0 until received
  const Headers& trailers() const noexcept { return trailers_; }

  // Server: sends the response headers; the body follows with write_all/shutdown_write.
  Result<void> respond(int status, const Headers& extra = {}, bool end_stream = false);
  // Sends these trailers when our side ends (after pending data); then shutdown_write() ends the stream.
  void set_trailers(Headers trailers) { out_trailers_ = std::move(trailers); }

  // ByteStream
  boost::asio::awaitable<Result<std::size_t>> read_some(std::span<std::uint8_t> buf);
  // Zero-copy read: waits like read_some and returns the first run of received bytes in place (empty
  // at EOF). The bytes stay valid and unconsumed (the peer's window stays closed for them) until
  // consume_view(n) with n <= the view's size; one view at a time, no read_some meanwhile.
  boost::asio::awaitable<Result<std::span<const std::uint8_t>>> read_view();
  void consume_view(std::size_t n);
  boost::asio::awaitable<Result<void>> write_all(std::span<const std::uint8_t> buf);
  // Zero-copy write of `data`, which lies inside `block` with at least kBlockHeadroom bytes of it
  // before `data` (else this is write_all): the DATA frame header is written into that headroom and
  // the session keeps `block` until the TLS write took the bytes. Returns, like write_all, once every
  // byte is framed; the caller must not modify `block` while the session still holds it.
  static constexpr std::size_t kBlockHeadroom = 9;
  boost::asio::awaitable<Result<void>> write_block(const net::BlockRef& block, std::span<const std::uint8_t> data);
  boost::asio::awaitable<Result<void>> shutdown_write();
  void close() noexcept;                       // RST_STREAM CANCEL unless already closed
  void reset(std::uint32_t error_code) noexcept;
  // Graceful end after use: if our side was shut down, lets our END_STREAM go out (and the stream close
  // on its own when the peer's END_STREAM has arrived); only a stream still open after that is reset,
  // NO_ERROR when our side ended (RFC 9113 8.1). A stream we never shut down gets close(). Resetting
  // streams that were about to end cleanly costs the peer work and trips rapid-reset limits.
  boost::asio::awaitable<void> finish();

  std::size_t buffered_bytes() const noexcept { return recv_dropped_ ? 0 : recv_.size(); }
  bool finished() const noexcept { return closed_; }
  bool remote_ended() const noexcept { return remote_end_; }  // the peer's END_STREAM arrived
  bool was_reset() const noexcept { return reset_; }          // ended by RST_STREAM (either side) or session loss
  std::uint32_t reset_code() const noexcept { return reset_code_; }

 private:
  friend class Session;
  bool on_data(const std::uint8_t* data, std::size_t len, const BlockRef* source);  // true: lent, not copied
  // Waits until something can be read: data, EOF, or an error (ok(true) = data buffered).
  boost::asio::awaitable<Result<bool>> wait_readable();
  void on_remote_end() noexcept;
  void on_closed(std::uint32_t error_code) noexcept;
  void on_session_dead(const Error& why);
  Error closed_error(const char* op) const;
  boost::asio::awaitable<Result<void>> write_pending(std::span<const std::uint8_t> buf);

  // Weak: the session owns its streams (map) and runs as long as its connection; a stream never keeps a
  // dead session alive (no reference cycle). A stream whose session is gone behaves as closed.
  std::weak_ptr<Session> session_;
  std::string peer_;  // the session's peer, for messages
  std::int32_t id_ = -1;
  Headers request_, response_, trailers_, out_trailers_;
  std::size_t header_bytes_ = 0;  // bytes of the header block being received (bounded)
  int status_ = 0;

  RecvQueue recv_;          // received, not yet read
  bool viewing_ = false;       // a read_view() span is out: recv_ must not drop its bytes
  bool recv_dropped_ = false;  // close() returned recv_'s window while viewing_; consume_view clears it
  std::span<const std::uint8_t> pending_;  // the caller's buffer during write_all (NO_COPY source)
  net::BlockRef pending_block_;            // write_block: the block pending_ lies in
  bool headroom_free_ = false;             // write_block: the headroom before pending_ is unused

  bool headers_done_ = false;     // final response headers received (client) / request complete (server)
  bool remote_end_ = false;       // END_STREAM received
  bool local_end_ = false;        // shutdown_write() asked; END_STREAM goes after pending_
  bool end_sent_ = false;         // our END_STREAM (or RST_STREAM) went out
  bool data_deferred_ = false;    // our data source returned DEFERRED; resume on new data/end
  bool has_data_source_ = false;  // request/response submitted with a data provider
  bool closed_ = false;           // nghttp2 closed the stream (or the session died)
  bool responded_ = false;        // server: our response HEADERS were submitted
  bool reset_ = false;            // closed by RST_STREAM (reset_code_) or session failure
  bool locally_closed_ = false;   // close() was called: reads and writes now fail with Cancelled
  std::uint32_t reset_code_ = 0;
  std::optional<Error> session_error_;
  Notify rx_;  // reader wake-up: data, END_STREAM, headers, close
  Notify tx_;  // writer wake-up: pending_ consumed, close
};

}  // namespace ambient::h2
