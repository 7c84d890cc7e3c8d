#pragma once
// Session: one HTTP/2 connection (client or server) on nghttp2, driven sans-I/O.
//
// - run() owns the connection: a reader loop (transport → nghttp2_session_mem_recv), a writer loop
//   (nghttp2_session_mem_send → one batched transport write) and a keepalive PING loop. nghttp2
//   callbacks only update stream state and wake coroutines; they never do I/O or submit frames
//   except trailers from the data source (allowed by nghttp2).
// - Server: each complete request HEADERS starts `handler(stream)` as its own coroutine.
// - Windows: stream and connection receive windows from Settings; WINDOW_UPDATE only as the reader
//   consumes (see stream.h), so memory per stream ≤ stream window, per connection ≤ connection window.
// - Malformed input: nghttp2 sends GOAWAY with the error code and the session ends; every stream gets
//   an error. A PING not acknowledged within ping_timeout ends the session (Timeout).
// - shutdown() sends GOAWAY(NO_ERROR): no new streams, existing ones finish, then the connection closes.
// - Abuse (abuse_guard.h): every frame header passes the guard before nghttp2 parses the frame; a
//   violation stops parsing at that frame and ends the connection with GOAWAY(ENHANCE_YOUR_CALM). Server:
//   at most max_concurrent_streams handlers run at once (streams the peer reset while their handler still
//   runs included); a request beyond that is refused (RST_STREAM REFUSED_STREAM) and counted.
// - Closing: once our last frames (a GOAWAY included) are written, the transport is half-closed and the
//   peer gets 1 s (the linger) to close its side; after an error, input is read and dropped meanwhile. A peer
//   that neither reads nor closes is cut off at the linger. A server connection with no stream for
//   idle_timeout gets GOAWAY(NO_ERROR).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/base/result.h"
#include "common/h2/abuse_guard.h"
#include "common/h2/headers.h"
#include "common/h2/notify.h"
#include "common/h2/settings.h"
#include "common/h2/stream.h"
#include "common/h2/transport.h"

struct nghttp2_session;

namespace ambient::h2 {

class Session : public std::enable_shared_from_this<Session> {
 public:
  enum class Role : std::uint8_t { Client, Server };
  using Handler = std::function<boost::asio::awaitable<void>(std::shared_ptr<Stream>)>;
  // Read blocks (kReadBlock bytes) streams may hold as zero-copy DATA (recv_queue.h) beyond the one
  // being read into: past this, DATA is copied, so a connection pins at most
  // kMaxLentBlocks * kReadBlock bytes beyond its flow-control windows.
  static constexpr std::size_t kReadBlock = 64u << 10;
  static constexpr std::size_t kMaxLentBlocks = 32;

  static Result<std::shared_ptr<Session>> client(boost::asio::any_io_executor ex, std::unique_ptr<Transport> t,
                                                 Settings settings, std::string peer = {});
  static Result<std::shared_ptr<Session>> server(boost::asio::any_io_executor ex, std::unique_ptr<Transport> t,
                                                 Settings settings, Handler handler, std::string peer = {});
  ~Session();

  // Runs the connection to its end. Returns ok for a clean end (GOAWAY/EOF with no error).
  boost::asio::awaitable<Result<void>> run();

  // Client: submits a request. With end_stream the HEADERS carry END_STREAM (no body).
  Result<std::shared_ptr<Stream>> open_stream(const Headers& headers, bool end_stream = false);
  // Client: HTTP/2 CONNECT to `authority` with extra headers; waits for the response. A non-200 answer
  // is an HttpStatus error carrying the status; the stream is then reset.
  boost::asio::awaitable<Result<std::shared_ptr<Stream>>> connect(const std::string& authority, const Headers& extra,
                                                                  std::chrono::milliseconds timeout);

  // True while new streams may be opened here (not draining, not dead, below the stream limits).
  bool can_open_stream() const noexcept;
  std::size_t active_streams() const noexcept { return streams_.size(); }
  std::uint32_t peer_max_concurrent_streams() const noexcept;
  bool alive() const noexcept { return !dead_; }
  bool draining() const noexcept { return goaway_sent_ || goaway_received_; }
  std::size_t buffered_bytes() const noexcept { return buffered_; }  // received, unread, all streams
  const std::string& peer() const noexcept { return peer_; }
  Role role() const noexcept { return role_; }
  std::uint64_t bytes_read() const noexcept { return bytes_read_; }
  std::uint64_t bytes_written() const noexcept { return bytes_written_; }
  // Zero-copy accounting: DATA payload sent in place from write_block() blocks, and received DATA
  // lent to streams as pieces of read blocks instead of copied (recv_queue.h).
  std::uint64_t data_sent_in_place() const noexcept { return data_in_place_; }
  std::uint64_t data_received_lent() const noexcept { return data_lent_; }
  std::size_t lent_blocks() const noexcept { return *live_blocks_ > 0 ? *live_blocks_ - 1 : 0; }

  // When the credentials this connection was authenticated with run out (the earlier notAfter of the two
  // certificates), set by the TLS dialer; the end of time otherwise. From then on a pool hands out no new
  // streams on it (hbone/pool.h): expired credentials never carry a new tunnel.
  void set_credentials_expiry(std::chrono::system_clock::time_point at) noexcept { credentials_expiry_ = at; }
  std::chrono::system_clock::time_point credentials_expiry() const noexcept { return credentials_expiry_; }

  // Why the connection was closed for abuse, if it was (tests, logs).
  const std::optional<Violation>& abuse() const noexcept { return abuse_; }
  std::size_t running_handlers() const noexcept { return running_handlers_; }

  void shutdown();                        // graceful: GOAWAY(NO_ERROR, last processed stream)
  void terminate(std::uint32_t error_code);  // GOAWAY(code), then close once flushed

 private:
  friend class Stream;
  struct Callbacks;
  Session(boost::asio::any_io_executor ex, Role role, std::unique_ptr<Transport> t, Settings s, Handler h,
          std::string peer);
  Result<void> init();
  boost::asio::awaitable<void> read_loop();
  boost::asio::awaitable<void> write_loop();
  boost::asio::awaitable<void> keepalive_loop();
  boost::asio::awaitable<void> idle_loop();
  void start_handlers();
  void end_for_abuse();
  void end_on_error(std::uint32_t code);
  void arm_linger();
  void signal_write() noexcept { write_wake_.notify(); }
  void fail_all(const Error& why);
  void consume(Stream& s, std::size_t n);
  Result<void> submit_response(Stream& s, const Headers& headers, bool with_body);

  boost::asio::any_io_executor ex_;
  Role role_;
  std::unique_ptr<Transport> transport_;
  Settings settings_;
  Handler handler_;
  std::string peer_;
  std::chrono::system_clock::time_point credentials_expiry_ = std::chrono::system_clock::time_point::max();
  nghttp2_session* ng_ = nullptr;  // owned; deleted in ~Session
  std::unordered_map<std::int32_t, std::shared_ptr<Stream>> streams_;
  std::vector<std::shared_ptr<Stream>> accepted_;  // server: complete requests waiting for a handler
  // The output batch: pieces in wire order, each either a range of out_ (frames nghttp2 serialised,
  // copied DATA) or a DATA frame in place in a writer's block (Stream::write_block), written in order.
  struct OutPiece {
    std::size_t off = 0, len = 0;  // out_ range, when block is null
    net::BlockRef block;           // else: bytes [p, p + len) of this block
    const std::uint8_t* p = nullptr;
  };
  void append_copy(const std::uint8_t* data, std::size_t n);
  void append_block(net::BlockRef block, const std::uint8_t* p, std::size_t n);
  std::vector<std::uint8_t> out_;
  std::vector<OutPiece> pieces_;
  std::size_t batched_ = 0;  // bytes in pieces_
  const BlockRef* reading_ = nullptr;              // the block nghttp2 is parsing (read_loop), for on_data
  std::shared_ptr<std::size_t> live_blocks_ = std::make_shared<std::size_t>(0);  // read blocks alive
  Notify write_wake_;
  boost::asio::steady_timer keepalive_timer_;
  boost::asio::steady_timer idle_timer_;
  Notify reader_done_wake_;
  bool reader_done_ = false;  // read_loop has returned
  bool closed_ = false;       // write_loop closed the transport
  boost::asio::steady_timer linger_timer_;  // bounds the peer's time to read our final GOAWAY and close
  bool linger_armed_ = false;
  std::optional<AbuseGuard> guard_;
  std::optional<Violation> abuse_;
  std::size_t running_handlers_ = 0;  // server: handlers spawned and not yet finished
  std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();  // a stream opened or closed
  std::chrono::steady_clock::time_point ping_sent_{};
  bool ping_outstanding_ = false;
  bool dead_ = false;
  bool goaway_sent_ = false;
  bool goaway_received_ = false;
  std::optional<Error> error_;  // why the session ended, if not cleanly
  std::size_t buffered_ = 0;
  std::uint64_t bytes_read_ = 0, bytes_written_ = 0;
  std::uint64_t data_in_place_ = 0, data_lent_ = 0;
};

}  // namespace ambient::h2
