#include "common/h2/stream.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

#include "common/h2/session.h"

namespace ambient::h2 {

namespace asio = boost::asio;

Stream::Stream(std::shared_ptr<Session> session, asio::any_io_executor ex)
    : session_(session), peer_(session ? session->peer() : std::string()), rx_(ex), tx_(ex) {}

Stream::~Stream() = default;

Error Stream::closed_error(const char* op) const {
  if (locally_closed_) return make_error(ErrorKind::Cancelled, fmt::format("stream {} {}: closed locally", id_, op));
  if (session_error_) return make_error(session_error_->kind, fmt::format("stream {} {}: {}", id_, op, session_error_->context));
  if (reset_)
    return make_error(ErrorKind::StreamReset,
                      fmt::format("stream {} {}: reset by {} ({})", id_, op, peer_, nghttp2_http2_strerror(reset_code_)),
                      static_cast<int>(reset_code_));
  return make_error(ErrorKind::Closed, fmt::format("stream {} {}: stream closed", id_, op));
}

asio::awaitable<Result<void>> Stream::wait_response(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!headers_done_) {
    if (closed_) co_return closed_error("waiting for response");
    if (!co_await rx_.wait_until(deadline) && !headers_done_ && !closed_)
      co_return errorf(ErrorKind::Timeout, "stream {}: no response from {} within {} ms", id_, peer_, timeout.count());
  }
  co_return ok();
}

Result<void> Stream::respond(int status, const Headers& extra, bool end_stream) {
  if (closed_) return closed_error("respond");
  Headers hs;
  hs.reserve(extra.size() + 1);
  hs.push_back({":status", std::to_string(status)});
  hs.insert(hs.end(), extra.begin(), extra.end());
  auto session = session_.lock();
  if (!session) return closed_error("respond");
  AMBIENT_TRY(session->submit_response(*this, hs, !end_stream));
  responded_ = true;
  has_data_source_ = !end_stream;
  if (end_stream) local_end_ = true;
  return ok();
}

asio::awaitable<Result<bool>> Stream::wait_readable() {
  for (;;) {
    if (!recv_.empty() && !recv_dropped_) co_return true;
    if (remote_end_) co_return false;
    // A reset before the peer's END_STREAM is an error whatever its code: the stream was cut, and a
    // tunnel must pass the cut on (a reset), never a clean end the app would take for complete data.
    if (closed_) co_return closed_error("read");
    co_await rx_.wait();
  }
}

asio::awaitable<Result<std::size_t>> Stream::read_some(std::span<std::uint8_t> buf) {
  auto readable = co_await wait_readable();
  if (!readable) co_return std::move(readable).error();
  if (!*readable || buf.empty()) co_return std::size_t{0};
  const std::size_t n = recv_.copy_out(buf);
  if (auto session = session_.lock()) session->consume(*this, n);
  co_return n;
}

asio::awaitable<Result<std::span<const std::uint8_t>>> Stream::read_view() {
  auto readable = co_await wait_readable();
  if (!readable) co_return std::move(readable).error();
  if (!*readable) co_return std::span<const std::uint8_t>{};
  viewing_ = true;
  co_return recv_.front();
}

void Stream::consume_view(std::size_t n) {
  viewing_ = false;
  if (recv_dropped_) {  // close() already returned the window for these bytes
    recv_dropped_ = false;
    recv_.clear();
    return;
  }
  n = std::min(n, recv_.size());
  recv_.pop(n);
  if (auto session = session_.lock()) session->consume(*this, n);
}

asio::awaitable<Result<void>> Stream::write_all(std::span<const std::uint8_t> buf) {
  pending_block_.reset();
  headroom_free_ = false;
  return write_pending(buf);
}

asio::awaitable<Result<void>> Stream::write_block(const net::BlockRef& block, std::span<const std::uint8_t> data) {
  headroom_free_ = block && block->contains(data.data(), data.size()) &&
                   static_cast<std::size_t>(data.data() - block->bytes.get()) >= kBlockHeadroom;
  pending_block_ = headroom_free_ ? block : nullptr;
  auto r = co_await write_pending(data);
  pending_block_.reset();  // the session holds its own reference to what it framed
  headroom_free_ = false;
  co_return r;
}

asio::awaitable<Result<void>> Stream::write_pending(std::span<const std::uint8_t> buf) {
  if (buf.empty()) co_return ok();
  if (closed_) co_return closed_error("write");
  if (local_end_) co_return errorf(ErrorKind::Internal, "stream {}: write after shutdown_write", id_);
  if (!has_data_source_) co_return errorf(ErrorKind::Internal, "stream {}: no body was announced for this stream", id_);
  auto session = session_.lock();
  if (!session) co_return closed_error("write");
  pending_ = buf;
  // If this coroutine is destroyed while suspended, forget the caller's buffer before it dies.
  struct AbandonGuard {
    Stream* s;
    ~AbandonGuard() {
      if (s != nullptr && !s->pending_.empty()) {
        s->pending_ = {};
        s->pending_block_.reset();  // what was framed holds its own reference in the session
        s->headroom_free_ = false;
        s->close();
      }
    }
  } guard{this};
  if (data_deferred_) {
    data_deferred_ = false;
    nghttp2_session_resume_data(session->ng_, id_);
  }
  session->signal_write();
  session.reset();  // don't keep the session alive while suspended
  while (!pending_.empty() && !closed_) co_await tx_.wait();
  guard.s = nullptr;
  if (!pending_.empty()) {
    pending_ = {};
    co_return closed_error("write");
  }
  co_return ok();
}

asio::awaitable<Result<void>> Stream::shutdown_write() {
  if (local_end_) co_return ok();
  // The peer ended its side and then closed the stream cleanly (RFC 9113 8.1: a complete response, then
  // RST_STREAM NO_ERROR): there is nothing left to end, so our end is not an error.
  if (closed_ && remote_end_ && !locally_closed_ && !session_error_ && (!reset_ || reset_code_ == NGHTTP2_NO_ERROR))
    co_return ok();
  if (closed_) co_return closed_error("shutdown");
  auto session = session_.lock();
  if (!session) co_return closed_error("shutdown");
  local_end_ = true;
  if (data_deferred_) {
    data_deferred_ = false;
    nghttp2_session_resume_data(session->ng_, id_);
  }
  session->signal_write();
  co_return ok();
}

void Stream::reset(std::uint32_t error_code) noexcept {
  if (closed_ || id_ < 0) return;
  auto session = session_.lock();
  if (!session) return;
  nghttp2_submit_rst_stream(session->ng_, NGHTTP2_FLAG_NONE, id_, error_code);
  session->signal_write();
}

void Stream::close() noexcept {
  // Unread bytes will never be consumed: give their connection window back now.
  if (!recv_dropped_ && buffered_bytes() > 0) {
    if (auto session = session_.lock()) session->consume(*this, buffered_bytes());
    if (viewing_)
      recv_dropped_ = true;  // the view's owner is still writing from it: consume_view drops it
    else
      recv_.clear();
  }
  if (closed_ || id_ < 0) return;
  reset(NGHTTP2_CANCEL);
  // Our side is done now; on_stream_close follows when nghttp2 has sent the RST_STREAM.
  closed_ = true;
  reset_ = true;
  locally_closed_ = true;
  reset_code_ = NGHTTP2_CANCEL;
  pending_ = {};
  rx_.notify();
  tx_.notify();
}

asio::awaitable<void> Stream::finish() {
  if (closed_) co_return;
  if (!local_end_) {
    close();
    co_return;
  }
  while (!end_sent_ && !closed_) co_await tx_.wait();
  // Both ends done: nghttp2 closes the stream by itself. Otherwise the peer is still sending: stop it.
  if (!closed_ && !remote_end_) reset(NGHTTP2_NO_ERROR);
}

bool Stream::on_data(const std::uint8_t* data, std::size_t len, const BlockRef* source) {
  const bool lent = recv_.append(data, len, source);
  rx_.notify();
  return lent;
}

void Stream::on_remote_end() noexcept {
  remote_end_ = true;
  rx_.notify();
}

void Stream::on_closed(std::uint32_t error_code) noexcept {
  closed_ = true;
  if (error_code != NGHTTP2_NO_ERROR || !remote_end_) {
    reset_ = true;
    reset_code_ = error_code;
  }
  rx_.notify();
  tx_.notify();
}

void Stream::on_session_dead(const Error& why) {
  if (!closed_) {
    closed_ = true;
    reset_ = true;
    session_error_ = why;
  }
  rx_.notify();
  tx_.notify();
}

}  // namespace ambient::h2
