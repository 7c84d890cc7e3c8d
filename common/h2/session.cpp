#include "common/h2/session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace ambient::h2 {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kInPlaceMin = 4096;  // smaller DATA payloads are copied into the batch
// After our final GOAWAY, the peer has this long to read it and close its side; then we close.
constexpr std::chrono::milliseconds kLinger{1000};

std::vector<nghttp2_nv> to_nv(const Headers& hs) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(hs.size());
  for (const auto& h : hs)
    nv.push_back(nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(h.name.data())),
                            reinterpret_cast<uint8_t*>(const_cast<char*>(h.value.data())), h.name.size(),
                            h.value.size(), NGHTTP2_NV_FLAG_NONE});
  return nv;
}

Stream* stream_of(nghttp2_session* ng, int32_t id) {
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(ng, id));
}

}  // namespace

// The one callbacks table. Each trampoline casts user_data and only updates state / wakes coroutines.
struct Session::Callbacks {
  static int on_begin_headers(nghttp2_session* ng, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Session*>(user);
    if (self->role_ != Role::Server || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
      return 0;
    auto s = std::make_shared<Stream>(self->shared_from_this(), self->ex_);
    s->id_ = frame->hd.stream_id;
    nghttp2_session_set_stream_user_data(ng, s->id_, s.get());
    self->streams_.emplace(s->id_, std::move(s));
    return 0;
  }

  static int on_header(nghttp2_session* ng, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    auto* self = static_cast<Session*>(user);
    Stream* s = stream_of(ng, frame->hd.stream_id);
    if (s == nullptr) return 0;
    s->header_bytes_ += namelen + valuelen + 32;  // RFC 9113 6.5.2 accounting
    if (s->header_bytes_ > self->settings_.max_header_list) {
      spdlog::debug("h2 {}: stream {} header list over {} bytes, resetting", self->peer_, s->id_,
                    self->settings_.max_header_list);
      if (self->role_ == Role::Server && (self->abuse_ = self->guard_->on_refused_stream(std::chrono::steady_clock::now())))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // RST_STREAM(INTERNAL_ERROR)
    }
    Header h{std::string(reinterpret_cast<const char*>(name), namelen),
             std::string(reinterpret_cast<const char*>(value), valuelen)};
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      s->request_.push_back(std::move(h));
    } else if (s->headers_done_) {
      s->trailers_.push_back(std::move(h));
    } else {
      if (h.name == ":status") s->status_ = std::atoi(h.value.c_str());
      s->response_.push_back(std::move(h));
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session* ng, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Session*>(user);
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        Stream* s = stream_of(ng, frame->hd.stream_id);
        if (s == nullptr) break;
        s->header_bytes_ = 0;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          s->headers_done_ = true;
          if (auto it = self->streams_.find(s->id_); it != self->streams_.end()) self->accepted_.push_back(it->second);
        } else if (frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
          if (s->status_ >= 200 || s->status_ == 0) {
            s->headers_done_ = true;
          } else {
            s->response_.clear();  // 1xx interim response: wait for the final one
            s->status_ = 0;
          }
        }
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) s->on_remote_end();
        s->rx_.notify();
        break;
      }
      case NGHTTP2_DATA:
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
          if (Stream* s = stream_of(ng, frame->hd.stream_id)) s->on_remote_end();
        break;
      case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) self->ping_outstanding_ = false;
        break;
      case NGHTTP2_RST_STREAM:
        // Rapid reset: a request the peer cancels before we answered it cost us work for nothing.
        if (self->role_ == Role::Server)
          if (Stream* s = stream_of(ng, frame->hd.stream_id); s != nullptr && !s->responded_)
            if ((self->abuse_ = self->guard_->on_premature_reset(std::chrono::steady_clock::now())))
              return NGHTTP2_ERR_CALLBACK_FAILURE;
        break;
      case NGHTTP2_GOAWAY:
        self->goaway_received_ = true;
        if (frame->goaway.error_code != NGHTTP2_NO_ERROR) {
          spdlog::info("h2 {}: GOAWAY received: {}", self->peer_, nghttp2_http2_strerror(frame->goaway.error_code));
          if (!self->error_)
            self->error_ = make_error(ErrorKind::H2Protocol,
                                      fmt::format("GOAWAY from {}: {}", self->peer_,
                                                  nghttp2_http2_strerror(frame->goaway.error_code)),
                                      static_cast<int>(frame->goaway.error_code));
        }
        break;
      default:
        break;
    }
    return 0;
  }

  // Runs for every frame header before nghttp2 parses the payload: a violation stops parsing here.
  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user) {
    auto* self = static_cast<Session*>(user);
    if (self->abuse_) return NGHTTP2_ERR_CALLBACK_FAILURE;
    self->abuse_ = self->guard_->on_frame(FrameHead{hd->type, hd->flags, static_cast<std::uint32_t>(hd->length), hd->stream_id},
                                          std::chrono::steady_clock::now());
    return self->abuse_ ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
  }

  static int on_data_chunk(nghttp2_session* ng, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                           void* user) {
    auto* self = static_cast<Session*>(user);
    Stream* s = stream_of(ng, stream_id);
    if (s == nullptr || s->closed_) {
      nghttp2_session_consume_connection(ng, len);  // nobody will read it: return the window now
      return 0;
    }
    // Flow control bounds this: the peer cannot send past the window we re-open on reads.
    self->buffered_ += len;
    if (s->on_data(data, len, *self->live_blocks_ <= kMaxLentBlocks ? self->reading_ : nullptr))
      self->data_lent_ += len;
    return 0;
  }

  static int on_stream_close(nghttp2_session* ng, int32_t stream_id, uint32_t error_code, void* user) {
    auto* self = static_cast<Session*>(user);
    Stream* s = stream_of(ng, stream_id);
    if (s == nullptr) return 0;
    nghttp2_session_set_stream_user_data(ng, stream_id, nullptr);
    s->on_closed(error_code);
    self->streams_.erase(stream_id);
    self->last_activity_ = std::chrono::steady_clock::now();  // the Stream lives on while its owner holds it
    return 0;
  }

  static ssize_t read_data(nghttp2_session* ng, int32_t stream_id, uint8_t*, size_t length, uint32_t* flags,
                           nghttp2_data_source* source, void*) {
    auto* s = static_cast<Stream*>(source->ptr);
    if (s->pending_.empty()) {
      if (!s->local_end_) {
        s->data_deferred_ = true;
        return NGHTTP2_ERR_DEFERRED;
      }
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!s->out_trailers_.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        auto nv = to_nv(s->out_trailers_);
        nghttp2_submit_trailer(ng, stream_id, nv.data(), nv.size());
      }
      return 0;
    }
    const std::size_t n = std::min(length, s->pending_.size());
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == s->pending_.size() && s->local_end_) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!s->out_trailers_.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        auto nv = to_nv(s->out_trailers_);
        nghttp2_submit_trailer(ng, stream_id, nv.data(), nv.size());
      }
    }
    return static_cast<ssize_t>(n);
  }

  // NO_COPY: the frame goes into the output batch in place (write_block: header written into the
  // block's headroom, block kept until written) or copied (write_all, a later frame of the same
  // write, whose header position holds bytes of the frame before it, or a small frame: each in-place
  // piece is its own TLS write, so small frames of many streams are better batched into one record).
  static int send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                       nghttp2_data_source* source, void* user) {
    auto* self = static_cast<Session*>(user);
    auto* s = static_cast<Stream*>(source->ptr);
    if (s->headroom_free_ && frame->data.padlen == 0 && length >= kInPlaceMin) {
      Block& b = *s->pending_block_;
      std::uint8_t* hd = b.bytes.get() + (s->pending_.data() - b.bytes.get()) - 9;
      std::memcpy(hd, framehd, 9);
      self->append_block(s->pending_block_, hd, 9 + length);
      self->data_in_place_ += length;
    } else {
      self->append_copy(framehd, 9);
      if (frame->data.padlen > 0) {
        const auto pad = static_cast<uint8_t>(frame->data.padlen - 1);
        self->append_copy(&pad, 1);
      }
      self->append_copy(s->pending_.data(), length);
      if (frame->data.padlen > 1) {
        const std::vector<std::uint8_t> zeros(frame->data.padlen - 1, 0);
        self->append_copy(zeros.data(), zeros.size());
      }
    }
    s->headroom_free_ = false;
    s->pending_ = s->pending_.subspan(length);
    if (s->pending_.empty()) s->tx_.notify();
    return 0;
  }

  // DATA frames as large as the peer, the windows and the pending bytes allow (nghttp2 caps them at
  // 16 KiB otherwise): fewer frame headers, and a write_block() write stays one in-place frame.
  static ssize_t data_length(nghttp2_session* ng, uint8_t, int32_t stream_id, int32_t session_window,
                             int32_t stream_window, uint32_t peer_max_frame, void*) {
    std::size_t want = 16384;
    if (Stream* s = stream_of(ng, stream_id)) want = std::max(want, s->pending_.size());
    const auto window = static_cast<std::size_t>(std::max(1, std::min(session_window, stream_window)));
    return static_cast<ssize_t>(std::min({want, window, static_cast<std::size_t>(peer_max_frame)}));
  }

  // A frame nghttp2 answered with a stream error (RST_STREAM): a request over the stream limit
  // (REFUSED_STREAM), a malformed request, ... Each counts as a refused stream.
  static int on_invalid_frame(nghttp2_session*, const nghttp2_frame* frame, int lib_error, void* user) {
    auto* self = static_cast<Session*>(user);
    spdlog::debug("h2 {}: invalid frame type {} on stream {}: {}", self->peer_, frame->hd.type, frame->hd.stream_id,
                  nghttp2_strerror(lib_error));
    if (self->role_ == Role::Server && (self->abuse_ = self->guard_->on_refused_stream(std::chrono::steady_clock::now())))
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
  }

  static int on_frame_send(nghttp2_session* ng, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Session*>(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      self->goaway_sent_ = true;
      if (frame->goaway.error_code != NGHTTP2_NO_ERROR && !self->error_)
        self->error_ = make_error(ErrorKind::H2Protocol,
                                  fmt::format("sent GOAWAY to {}: {}", self->peer_,
                                              nghttp2_http2_strerror(frame->goaway.error_code)),
                                  static_cast<int>(frame->goaway.error_code));
    }
    const bool ends = frame->hd.type == NGHTTP2_RST_STREAM ||
                      ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
                       (frame->hd.flags & NGHTTP2_FLAG_END_STREAM));
    if (ends)
      if (Stream* s = stream_of(ng, frame->hd.stream_id)) {
        s->end_sent_ = true;
        s->tx_.notify();
      }
    return 0;
  }

  static const nghttp2_session_callbacks* table() {
    static const nghttp2_session_callbacks* cbs = [] {
      nghttp2_session_callbacks* c = nullptr;
      nghttp2_session_callbacks_new(&c);
      nghttp2_session_callbacks_set_on_begin_frame_callback(c, on_begin_frame);
      nghttp2_session_callbacks_set_on_begin_headers_callback(c, on_begin_headers);
      nghttp2_session_callbacks_set_on_header_callback(c, on_header);
      nghttp2_session_callbacks_set_on_frame_recv_callback(c, on_frame_recv);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, on_data_chunk);
      nghttp2_session_callbacks_set_on_stream_close_callback(c, on_stream_close);
      nghttp2_session_callbacks_set_send_data_callback(c, send_data);
      nghttp2_session_callbacks_set_data_source_read_length_callback(c, data_length);
      nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(c, on_invalid_frame);
      nghttp2_session_callbacks_set_on_frame_send_callback(c, on_frame_send);
      return c;  // process lifetime
    }();
    return cbs;
  }
};

Session::Session(asio::any_io_executor ex, Role role, std::unique_ptr<Transport> t, Settings s, Handler h,
                 std::string peer)
    : ex_(ex), role_(role), transport_(std::move(t)), settings_(s), handler_(std::move(h)), peer_(std::move(peer)),
      write_wake_(ex), keepalive_timer_(ex), idle_timer_(ex), reader_done_wake_(ex), linger_timer_(ex) {
  out_.reserve(16u << 10);
}

Session::~Session() {
  if (ng_ != nullptr) nghttp2_session_del(ng_);
}

Result<std::shared_ptr<Session>> Session::client(asio::any_io_executor ex, std::unique_ptr<Transport> t,
                                                 Settings settings, std::string peer) {
  std::shared_ptr<Session> s(new Session(ex, Role::Client, std::move(t), settings, nullptr, std::move(peer)));
  AMBIENT_TRY(s->init());
  return s;
}

Result<std::shared_ptr<Session>> Session::server(asio::any_io_executor ex, std::unique_ptr<Transport> t,
                                                 Settings settings, Handler handler, std::string peer) {
  std::shared_ptr<Session> s(new Session(ex, Role::Server, std::move(t), settings, std::move(handler), std::move(peer)));
  AMBIENT_TRY(s->init());
  return s;
}

Result<void> Session::init() {
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);  // windows re-open only as readers consume
  nghttp2_option_set_peer_max_concurrent_streams(opt, settings_.max_concurrent_streams);
  // nghttp2's own limits stay as backstops behind the guard: CONTINUATIONs per block (the same limit;
  // nghttp2 checks first), and RST_STREAM overall, set far above normal cancellation rates, since resets
  // after our response are ordinary client cancels (premature ones are the guard's).
  nghttp2_option_set_max_continuations(opt, settings_.abuse.max_continuations);
  nghttp2_option_set_stream_reset_rate_limit(opt, 100'000, 10'000);
  int rv = role_ == Role::Client ? nghttp2_session_client_new2(&ng_, Callbacks::table(), this, opt)
                                 : nghttp2_session_server_new2(&ng_, Callbacks::table(), this, opt);
  nghttp2_option_del(opt);
  if (rv != 0) return errorf(ErrorKind::Internal, "nghttp2 session: {}", nghttp2_strerror(rv));
  // Compressed HEADERS limit: twice the decoded limit leaves room for Huffman's worst case.
  guard_.emplace(settings_.abuse, 2 * settings_.max_header_list + 1024, std::chrono::steady_clock::now());

  std::vector<nghttp2_settings_entry> iv = {
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings_.stream_window},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, std::clamp<std::uint32_t>(settings_.max_frame_size, 16384, 16777215)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings_.max_header_list},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings_.max_concurrent_streams},
  };
  if (role_ == Role::Client) iv.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  rv = nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
  if (rv != 0) return errorf(ErrorKind::Internal, "nghttp2 settings: {}", nghttp2_strerror(rv));
  rv = nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0,
                                             static_cast<int32_t>(std::min<std::uint32_t>(settings_.connection_window, 0x7fffffff)));
  if (rv != 0) return errorf(ErrorKind::Internal, "nghttp2 connection window: {}", nghttp2_strerror(rv));
  return ok();
}

asio::awaitable<Result<void>> Session::run() {
  using namespace asio::experimental::awaitable_operators;
  auto self = shared_from_this();
  co_await (read_loop() && write_loop() && keepalive_loop() && idle_loop());
  if (error_) co_return *error_;
  co_return ok();
}

asio::awaitable<void> Session::read_loop() {
  // Streams may keep large DATA pieces of `in` instead of copying them (recv_queue.h); a block they
  // still hold is left to them and the next read gets a fresh one.
  const auto new_block = [this] {
    auto b = std::make_shared<Block>(kReadBlock);
    b->live_count = live_blocks_;
    ++*live_blocks_;
    return b;
  };
  auto in = new_block();
  // After an error the GOAWAY is queued: input is read and dropped until the peer closes (or the linger
  // closes the transport), so the peer is not reset before it can read why.
  bool discarding = false;
  while (!dead_) {
    if (in.use_count() > 1) in = new_block();
    auto r = co_await transport_->read_some(in->space());
    if (dead_) break;
    if (!r) {
      fail_all(r.error().kind == ErrorKind::Cancelled ? make_error(ErrorKind::Closed, "connection closed")
                                                      : std::move(r).error());
      break;
    }
    if (*r == 0) {
      // EOF: clean if nothing was in flight and nghttp2 expected no more.
      const bool clean = streams_.empty() && !error_;  // an earlier GOAWAY error stays the outcome
      fail_all(make_error(ErrorKind::Closed, fmt::format("connection closed by {}", peer_)));
      if (clean) error_.reset();
      break;
    }
    if (discarding) continue;
    bytes_read_ += *r;
    reading_ = &in;
    const ssize_t rv = nghttp2_session_mem_recv(ng_, in->bytes.get(), *r);
    reading_ = nullptr;
    if (rv < 0 || abuse_) {
      // Protocol violations queue a GOAWAY inside nghttp2 (except a bad preface): flush it, then end.
      // nghttp2's flood checks (outbound ACK queue, CONTINUATIONs) are abuse as the guard's are.
      if (!abuse_ && rv == NGHTTP2_ERR_FLOODED)
        abuse_ = Violation{kEnhanceYourCalm, "control frame flood: over 1000 PING/SETTINGS ACKs queued (nghttp2)"};
      if (!abuse_ && rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
        abuse_ = Violation{kEnhanceYourCalm, fmt::format("CONTINUATION flood: over {} CONTINUATION frames in one header block",
                                                         settings_.abuse.max_continuations)};
      if (abuse_) {
        end_for_abuse();
      } else {
        spdlog::info("h2 {}: closing connection: {}", peer_, nghttp2_strerror(static_cast<int>(rv)));
        if (!error_) error_ = make_error(ErrorKind::H2Protocol, fmt::format("HTTP/2 error from {}: {}", peer_, nghttp2_strerror(static_cast<int>(rv))),
                                         NGHTTP2_PROTOCOL_ERROR);
        end_on_error(NGHTTP2_PROTOCOL_ERROR);
      }
      discarding = true;
      continue;
    }
    start_handlers();
    if (abuse_) {
      end_for_abuse();
      discarding = true;
      continue;
    }
    signal_write();
    if (!nghttp2_session_want_read(ng_) && !nghttp2_session_want_write(ng_)) break;
    // Let the readers just woken run before decrypting more: the bytes they copy out of their stream
    // buffer are still in cache, and the buffers stay small.
    co_await asio::post(ex_, asio::use_awaitable);
  }
  reader_done_ = true;
  reader_done_wake_.notify();
}

void Session::arm_linger() {
  if (linger_armed_) return;
  linger_armed_ = true;
  linger_timer_.expires_after(kLinger);
  linger_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto self = weak.lock(); self && !self->closed_) {
      self->fail_all(make_error(ErrorKind::Timeout, fmt::format("{} did not close the connection after our GOAWAY", self->peer_)));
      self->transport_->close();  // fails the writer's write or the reader's read: both loops end
    }
  });
}

void Session::start_handlers() {
  // Reset streams get no handler (a rapid-reset client sends HEADERS and RST_STREAM together); past the
  // handler limit, requests are refused (RFC 9113 8.7: REFUSED_STREAM, safe to retry).
  for (auto& s : accepted_) {
    if (s->closed_) continue;
    if (running_handlers_ >= settings_.max_concurrent_streams) {
      s->reset(NGHTTP2_REFUSED_STREAM);
      if (!abuse_) abuse_ = guard_->on_refused_stream(std::chrono::steady_clock::now());
      continue;
    }
    ++running_handlers_;
    last_activity_ = std::chrono::steady_clock::now();
    asio::co_spawn(ex_, [h = handler_, s, session = weak_from_this()]() -> asio::awaitable<void> {
          co_await h(s);
          co_await s->finish();
          if (auto self = session.lock()) {
            --self->running_handlers_;
            self->last_activity_ = std::chrono::steady_clock::now();
          }
        }, asio::detached);
  }
  accepted_.clear();
}

void Session::end_for_abuse() {
  spdlog::warn("h2 {}: closing connection for abuse: {} (GOAWAY ENHANCE_YOUR_CALM)", peer_, abuse_->reason);
  if (!error_) error_ = make_error(ErrorKind::H2Protocol, fmt::format("HTTP/2 peer {}: {}", peer_, abuse_->reason), static_cast<int>(abuse_->code));
  end_on_error(abuse_->code);
}

void Session::end_on_error(std::uint32_t code) {
  nghttp2_session_terminate_session(ng_, code);
  goaway_sent_ = true;
  signal_write();
  arm_linger();  // a peer that neither reads our GOAWAY nor closes is cut off
}

asio::awaitable<void> Session::write_loop() {
  bool flushed = true;  // every frame we serialised was written
  for (;;) {
    while (!dead_ && batched_ < settings_.write_batch) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(ng_, &data);
      if (n < 0) {
        fail_all(errorf(ErrorKind::Internal, "nghttp2 send: {}", nghttp2_strerror(static_cast<int>(n))));
        break;
      }
      if (n == 0) break;
      append_copy(data, static_cast<std::size_t>(n));
    }
    if (batched_ > 0 && transport_) {
      // Only this loop appends to the batch (send_data runs inside mem_send), so it is stable here.
      Result<void> r = ok();
      for (const auto& piece : pieces_) {
        const std::span<const std::uint8_t> bytes =
            piece.block ? std::span<const std::uint8_t>(piece.p, piece.len)
                        : std::span<const std::uint8_t>(out_.data() + piece.off, piece.len);
        r = co_await transport_->write_all(bytes);
        if (!r) break;
      }
      bytes_written_ += batched_;
      out_.clear();
      pieces_.clear();
      batched_ = 0;
      if (!r) {
        fail_all(std::move(r).error());
        flushed = false;
        break;
      }
      continue;
    }
    if (dead_) break;
    if (!nghttp2_session_want_read(ng_) && !nghttp2_session_want_write(ng_)) {
      fail_all(make_error(ErrorKind::Closed, "connection finished"));
      if (error_ && error_->context == "connection finished") error_.reset();
      break;
    }
    co_await write_wake_.wait();
  }
  if (flushed && !reader_done_) {
    // Our last frames (a GOAWAY included) are written: half-close, so they reach the peer ahead of any reset
    // (TCP's abortive close, a tunnel's RST_STREAM), and wait for the peer to close its side (linger-bounded).
    (void)co_await transport_->shutdown_write();
    arm_linger();
    while (!reader_done_) co_await reader_done_wake_.wait();
  }
  closed_ = true;
  transport_->close();  // wakes the reader if it is still waiting
  keepalive_timer_.cancel();
  idle_timer_.cancel();
  linger_timer_.cancel();
}

asio::awaitable<void> Session::idle_loop() {
  const auto timeout = settings_.idle_timeout;
  if (role_ != Role::Server || timeout.count() <= 0) co_return;
  auto deadline = last_activity_ + timeout;
  while (!dead_ && !goaway_sent_) {
    idle_timer_.expires_at(deadline);
    auto [ec] = co_await idle_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || dead_ || goaway_sent_) break;
    const auto now = std::chrono::steady_clock::now();
    if (!streams_.empty() || running_handlers_ > 0) {
      deadline = now + timeout;
    } else if (last_activity_ + timeout > now) {
      deadline = last_activity_ + timeout;
    } else {
      spdlog::debug("h2 {}: no stream for {} ms, closing (GOAWAY NO_ERROR)", peer_, timeout.count());
      shutdown();
      break;
    }
  }
}

asio::awaitable<void> Session::keepalive_loop() {
  if (settings_.ping_interval.count() <= 0) co_return;
  while (!dead_) {
    keepalive_timer_.expires_after(settings_.ping_interval);
    auto [ec] = co_await keepalive_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || dead_) break;
    const auto now = std::chrono::steady_clock::now();
    if (ping_outstanding_) {
      if (now - ping_sent_ >= settings_.ping_timeout) {
        spdlog::info("h2 {}: no PING ACK within {} ms, dropping connection", peer_, settings_.ping_timeout.count());
        error_ = errorf(ErrorKind::Timeout, "HTTP/2 keepalive: {} did not answer PING within {} ms", peer_,
                        settings_.ping_timeout.count());
        terminate(NGHTTP2_NO_ERROR);
        fail_all(*error_);
        transport_->close();
        break;
      }
      continue;
    }
    nghttp2_submit_ping(ng_, NGHTTP2_FLAG_NONE, nullptr);
    ping_outstanding_ = true;
    ping_sent_ = now;
    signal_write();
  }
}

void Session::append_copy(const std::uint8_t* data, std::size_t n) {
  if (n == 0) return;
  if (pieces_.empty() || pieces_.back().block) pieces_.push_back(OutPiece{out_.size(), 0, nullptr, nullptr});
  out_.insert(out_.end(), data, data + n);
  pieces_.back().len += n;
  batched_ += n;
}

void Session::append_block(net::BlockRef block, const std::uint8_t* p, std::size_t n) {
  pieces_.push_back(OutPiece{0, n, std::move(block), p});
  batched_ += n;
}

void Session::fail_all(const Error& why) {
  if (!dead_ && !error_) error_ = why;
  dead_ = true;
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, s] : streams) {
    nghttp2_session_set_stream_user_data(ng_, id, nullptr);
    s->on_session_dead(why);
  }
  for (auto& s : accepted_) s->on_session_dead(why);
  accepted_.clear();
  write_wake_.notify();
  keepalive_timer_.cancel();
  idle_timer_.cancel();
}

void Session::consume(Stream& s, std::size_t n) {
  buffered_ -= std::min(buffered_, n);
  if (dead_) return;
  if (!s.closed_ && s.id_ > 0)
    nghttp2_session_consume(ng_, s.id_, n);
  else
    nghttp2_session_consume_connection(ng_, n);
  signal_write();
}

Result<void> Session::submit_response(Stream& s, const Headers& headers, bool with_body) {
  if (dead_) return errorf(ErrorKind::Closed, "connection to {} is closed", peer_);
  auto nv = to_nv(headers);
  nghttp2_data_provider provider{};
  provider.source.ptr = &s;
  provider.read_callback = Callbacks::read_data;
  const int rv = nghttp2_submit_response(ng_, s.id_, nv.data(), nv.size(), with_body ? &provider : nullptr);
  if (rv != 0) return errorf(ErrorKind::H2Protocol, "stream {}: submit response: {}", s.id_, nghttp2_strerror(rv));
  signal_write();
  return ok();
}

Result<std::shared_ptr<Stream>> Session::open_stream(const Headers& headers, bool end_stream) {
  if (role_ != Role::Client) return errorf(ErrorKind::Internal, "open_stream on a server session");
  if (dead_) return errorf(ErrorKind::Closed, "connection to {} is closed", peer_);
  if (draining()) return errorf(ErrorKind::Closed, "connection to {} is draining (GOAWAY)", peer_);
  auto s = std::make_shared<Stream>(shared_from_this(), ex_);
  s->request_ = headers;
  auto nv = to_nv(headers);
  nghttp2_data_provider provider{};
  provider.source.ptr = s.get();
  provider.read_callback = Callbacks::read_data;
  const int32_t id = nghttp2_submit_request(ng_, nullptr, nv.data(), nv.size(), end_stream ? nullptr : &provider, s.get());
  if (id < 0) return errorf(ErrorKind::H2Protocol, "submit request to {}: {}", peer_, nghttp2_strerror(id));
  s->id_ = id;
  s->has_data_source_ = !end_stream;
  s->local_end_ = end_stream;
  streams_.emplace(id, s);
  signal_write();
  return s;
}

asio::awaitable<Result<std::shared_ptr<Stream>>> Session::connect(const std::string& authority, const Headers& extra,
                                                                  std::chrono::milliseconds timeout) {
  Headers hs;
  hs.reserve(extra.size() + 2);
  hs.push_back({":method", "CONNECT"});
  hs.push_back({":authority", authority});
  hs.insert(hs.end(), extra.begin(), extra.end());
  auto opened = open_stream(hs, false);
  if (!opened) co_return std::move(opened).error();
  auto s = std::move(opened).value();
  auto r = co_await s->wait_response(timeout);
  if (!r) {
    s->close();
    co_return std::move(r).error();
  }
  if (s->status() != 200) {
    const int status = s->status();
    s->close();
    co_return make_error(ErrorKind::HttpStatus, fmt::format("CONNECT {} via {} answered {}", authority, peer_, status), status);
  }
  co_return s;
}

bool Session::can_open_stream() const noexcept {
  if (dead_ || draining() || role_ != Role::Client) return false;
  const std::uint32_t limit = std::min(settings_.max_concurrent_streams, peer_max_concurrent_streams());
  return streams_.size() < limit;
}

std::uint32_t Session::peer_max_concurrent_streams() const noexcept {
  return nghttp2_session_get_remote_settings(ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

void Session::shutdown() {
  if (dead_ || goaway_sent_) return;
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  goaway_sent_ = true;
  signal_write();
}

void Session::terminate(std::uint32_t error_code) {
  if (dead_) return;
  nghttp2_session_terminate_session(ng_, error_code);
  goaway_sent_ = true;
  signal_write();
}


}  // namespace ambient::h2
