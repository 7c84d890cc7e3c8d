#include "common/grpc/client.h"

#include <nghttp2/nghttp2.h>

#include <span>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/grpc/metadata.h"

namespace ambient::grpc {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kReadChunk = 32u << 10;       // bytes moved from the h2 stream per read
constexpr std::size_t kKeepWriteBuffer = 1u << 20;  // a larger frame buffer is freed after its send

Error with_path(std::string_view path, Error e) {
  e.context = fmt::format("{}: {}", path, e.context);
  return e;
}

// The gRPC status a client reports for a transport failure (grpc's statuscodes.md, "errors from the
// library"): streams the server refused or connections that broke are UNAVAILABLE, other resets INTERNAL.
StatusCode status_for_transport_error(const Error& e) {
  if (e.kind == ErrorKind::StreamReset) {
    if (e.code == NGHTTP2_REFUSED_STREAM) return StatusCode::Unavailable;
    if (e.code == NGHTTP2_CANCEL) return StatusCode::Cancelled;
    return StatusCode::Internal;
  }
  return StatusCode::Unavailable;
}

}  // namespace

// Shared by the Call handle and, while a deadline is armed, its watchdog coroutine.
struct Call::State {
  State(std::shared_ptr<h2::Stream> s, std::string p, std::size_t max_message, asio::any_io_executor ex,
        std::optional<Clock::duration> budget)
      : stream(std::move(s)), path(std::move(p)), decoder(max_message), timer(ex), timeout(budget) {}

  std::shared_ptr<h2::Stream> stream;
  std::string path;
  FrameDecoder decoder;
  std::vector<std::uint8_t> rbuf;           // read chunk, allocated at the first recv()
  std::span<const std::uint8_t> undecoded;  // bytes of rbuf not yet given to the decoder
  std::string wbuf;                         // the frame being sent (write_all does not copy it)
  asio::steady_timer timer;                 // the deadline, when there is one
  std::optional<Clock::duration> timeout;   // for messages: the budget the deadline was set with
  h2::Headers initial, trailers;
  Status status;
  std::optional<Error> final_error;  // set with `done` when the call ended in an error
  bool headers_checked = false;      // :status and content-type validated (before the first message)
  bool send_closed = false;          // close_send() asked
  bool done = false;                 // the outcome is known: status/trailers final
  bool deadline_exceeded = false;    // the watchdog reset the stream
  bool cancelled = false;            // cancel() (or ~Call) reset the stream

  // The server has sent its final status (trailers, or a Trailers-Only response).
  bool peer_finished() const {
    return !stream->trailers().empty() || h2::find_header(stream->response_headers(), "grpc-status").has_value();
  }

  static asio::awaitable<void> watch(std::shared_ptr<State> st) {
    auto [ec] = co_await st->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || st->done || st->cancelled || st->peer_finished()) co_return;
    st->deadline_exceeded = true;
    st->stream->close();  // RST_STREAM CANCEL; wakes the reader and the writer once it is written
  }

  Error deadline_error() const {
    const auto ms = timeout ? std::chrono::duration_cast<std::chrono::milliseconds>(*timeout).count() : 0;
    return make_error(ErrorKind::Timeout, fmt::format("{}: DEADLINE_EXCEEDED: deadline of {} ms passed", path, ms),
                      static_cast<int>(StatusCode::DeadlineExceeded));
  }
  Error cancel_error() const {
    return make_error(ErrorKind::Cancelled, fmt::format("{}: CANCELLED: cancelled by the client", path),
                      static_cast<int>(StatusCode::Cancelled));
  }

  // An HTTP/2 write failed: our own reset explains it first, then the call's outcome if the reader
  // already knows it (e.g. the server's status), else the transport's error stands.
  Error stream_error(Error e) const {
    if (deadline_exceeded) return deadline_error();
    if (cancelled) return cancel_error();
    if (done && final_error) return *final_error;
    return with_path(path, std::move(e));
  }

  Result<std::optional<std::string>> finish(Status s) {
    done = true;
    timer.cancel();
    status = std::move(s);
    if (status.ok()) return std::optional<std::string>{};
    final_error = status.to_error(path);
    return *final_error;
  }

  // Ends the call with a failure that is not a server status; resets the stream if it is still open.
  Result<std::optional<std::string>> fail(Error e, StatusCode code) {
    done = true;
    timer.cancel();
    if (!stream->finished()) stream->close();
    status = Status{static_cast<int>(code), e.context};
    final_error = std::move(e);
    return *final_error;
  }

  // :status 200 and content-type application/grpc[+proto|;...], checked before the first message.
  Result<void> check_headers() {
    headers_checked = true;
    if (stream->status() != 200) {
      const StatusCode code = status_from_http(stream->status());
      return make_error(ErrorKind::GrpcStatus,
                        fmt::format("{}: {}: HTTP status {} without grpc-status", path, to_string(code),
                                    stream->status()),
                        static_cast<int>(code));
    }
    auto ct = h2::find_header(stream->response_headers(), "content-type");
    if (!ct || !ct->starts_with("application/grpc"))
      return make_error(ErrorKind::GrpcStatus,
                        fmt::format("{}: INTERNAL: response content-type \"{}\" is not application/grpc", path,
                                    ct ? *ct : "(none)"),
                        static_cast<int>(StatusCode::Internal));
    initial = to_metadata(stream->response_headers());
    return ok();
  }

  // read_some() returned 0: END_STREAM from the server, or the end of a stream that we reset.
  Result<std::optional<std::string>> end_of_stream() {
    if (cancelled) return fail(cancel_error(), StatusCode::Cancelled);
    if (deadline_exceeded) return fail(deadline_error(), StatusCode::DeadlineExceeded);
    const bool trailers_only = stream->trailers().empty();
    const h2::Headers& source = trailers_only ? stream->response_headers() : stream->trailers();
    if (auto st = status_from_headers(source)) {
      if (decoder.mid_message())
        return fail(with_path(path, make_error(ErrorKind::Parse, "stream ended in the middle of a message",
                                               static_cast<int>(StatusCode::Internal))),
                    StatusCode::Internal);
      trailers = to_metadata(source);
      if (!trailers_only && initial.empty()) initial = to_metadata(stream->response_headers());
      return finish(std::move(*st));
    }
    // No grpc-status: a non-gRPC answer (proxy error page), a reset, or a broken server.
    if (stream->status() != 0 && stream->status() != 200) {
      auto bad = check_headers();
      return fail(std::move(bad).error(), status_from_http(stream->status()));
    }
    if (stream->reset_code() == NGHTTP2_CANCEL)
      return fail(make_error(ErrorKind::StreamReset, fmt::format("{}: CANCELLED: stream cancelled by the server", path),
                             NGHTTP2_CANCEL),
                  StatusCode::Cancelled);
    return fail(make_error(ErrorKind::GrpcStatus,
                           fmt::format("{}: INTERNAL: {} without grpc-status", path,
                                       stream->status() == 0 ? "stream ended before the response headers"
                                                             : "response ended"),
                           static_cast<int>(StatusCode::Internal)),
                StatusCode::Internal);
  }
};

Call& Call::operator=(Call&& other) noexcept {
  if (this != &other) {
    cancel();
    if (st_) st_->timer.cancel();
    st_ = std::move(other.st_);
  }
  return *this;
}

Call::~Call() {
  if (!st_) return;
  st_->timer.cancel();
  cancel();
}

void Call::cancel() noexcept {
  if (!st_ || st_->done || st_->cancelled) return;
  st_->cancelled = true;
  st_->timer.cancel();
  st_->stream->close();
}

const h2::Headers& Call::initial_metadata() const noexcept { return st_->initial; }
const h2::Headers& Call::trailers() const noexcept { return st_->trailers; }
const Status& Call::status() const noexcept { return st_->status; }
bool Call::done() const noexcept { return st_->done; }
const std::string& Call::path() const noexcept { return st_->path; }

asio::awaitable<Result<void>> Call::send(std::string message) {
  auto st = st_;  // keeps the state alive across the suspension even if the Call is moved
  if (st->send_closed) co_return errorf(ErrorKind::InvalidArgument, "{}: send after close_send", st->path);
  if (st->done) {
    if (st->final_error) co_return *st->final_error;
    co_return errorf(ErrorKind::Closed, "{}: send after the call ended", st->path);
  }
  if (st->cancelled) co_return st->cancel_error();
  if (st->deadline_exceeded) co_return st->deadline_error();
  st->wbuf.clear();
  if (auto r = append_frame(st->wbuf, message); !r) co_return with_path(st->path, std::move(r).error());
  auto w = co_await st->stream->write_all(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(st->wbuf.data()), st->wbuf.size()));
  if (st->wbuf.capacity() > kKeepWriteBuffer) std::string().swap(st->wbuf);
  if (!w) co_return st->stream_error(std::move(w).error());
  co_return ok();
}

asio::awaitable<Result<void>> Call::close_send() {
  auto st = st_;
  if (st->send_closed) co_return ok();
  st->send_closed = true;
  if (st->done) co_return ok();  // nothing left to half-close for
  auto r = co_await st->stream->shutdown_write();
  // A server may end the call before we half-close (grpc++ answers a unary call once it has the
  // message): then there is nothing left to close, and recv() holds the outcome.
  if (!r && !(st->peer_finished() && !st->cancelled && !st->deadline_exceeded))
    co_return st->stream_error(std::move(r).error());
  co_return ok();
}

asio::awaitable<Result<std::optional<std::string>>> Call::recv() {
  auto st = st_;
  if (st->done) {
    if (st->final_error) co_return *st->final_error;
    co_return std::optional<std::string>{};
  }
  for (;;) {
    // Bytes may have arrived between our reset and its RST_STREAM going out: they are not delivered.
    if (st->cancelled) co_return st->fail(st->cancel_error(), StatusCode::Cancelled);
    if (st->deadline_exceeded) co_return st->fail(st->deadline_error(), StatusCode::DeadlineExceeded);
    auto m = st->decoder.next(st->undecoded);
    if (!m) {
      Error e = with_path(st->path, std::move(m).error());
      const StatusCode code = e.kind == ErrorKind::ResourceExhausted ? StatusCode::ResourceExhausted : StatusCode::Internal;
      e.code = static_cast<int>(code);
      co_return st->fail(std::move(e), code);
    }
    if (*m) {
      if (!st->headers_checked) {
        if (auto h = st->check_headers(); !h) {
          const auto code = static_cast<StatusCode>(h.error().code);
          co_return st->fail(std::move(h).error(), code);
        }
      }
      co_return std::move(*m);
    }
    if (st->rbuf.empty()) st->rbuf.resize(kReadChunk);
    auto n = co_await st->stream->read_some(st->rbuf);
    if (!n) {
      if (st->cancelled) co_return st->fail(st->cancel_error(), StatusCode::Cancelled);
      if (st->deadline_exceeded) co_return st->fail(st->deadline_error(), StatusCode::DeadlineExceeded);
      Error e = std::move(n).error();
      const StatusCode code = status_for_transport_error(e);
      co_return st->fail(with_path(st->path, std::move(e)), code);
    }
    if (*n == 0) co_return st->end_of_stream();
    st->undecoded = std::span<const std::uint8_t>(st->rbuf.data(), *n);
  }
}

asio::awaitable<Result<Call>> start_call(std::shared_ptr<h2::Session> session, std::string path, CallOptions options) {
  if (!session) co_return make_error(ErrorKind::InvalidArgument, "gRPC call without a session");
  if (path.size() < 2 || path.front() != '/')
    co_return errorf(ErrorKind::InvalidArgument, "gRPC path \"{}\" is not /package.Service/Method", path);
  const std::string& authority = options.authority.empty() ? session->peer() : options.authority;
  if (authority.empty()) co_return errorf(ErrorKind::InvalidArgument, "{}: no :authority", path);

  const auto now = Clock::now();
  std::optional<Clock::time_point> deadline = options.deadline;
  if (options.timeout) {
    const auto by_timeout = now + *options.timeout;
    if (!deadline || by_timeout < *deadline) deadline = by_timeout;
  }
  std::optional<Clock::duration> budget;
  if (deadline) {
    budget = *deadline - now;
    if (*budget <= Clock::duration::zero())
      co_return make_error(ErrorKind::Timeout, fmt::format("{}: DEADLINE_EXCEEDED: deadline passed before the call", path),
                           static_cast<int>(StatusCode::DeadlineExceeded));
  }

  h2::Headers hs;
  hs.reserve(8 + options.metadata.size());
  hs.push_back({":method", "POST"});
  hs.push_back({":scheme", options.scheme});
  hs.push_back({":path", path});
  hs.push_back({":authority", authority});
  hs.push_back({"content-type", "application/grpc"});
  hs.push_back({"te", "trailers"});
  if (budget && options.send_grpc_timeout) hs.push_back({"grpc-timeout", encode_timeout(*budget)});
  if (!options.user_agent.empty()) hs.push_back({"user-agent", options.user_agent});
  for (auto& md : options.metadata) {
    if (auto v = validate_metadata(md.name, md.value); !v) co_return with_path(path, std::move(v).error());
    std::string value = is_binary_header(md.name) ? base64_encode(md.value) : std::move(md.value);
    hs.push_back({std::move(md.name), std::move(value)});
  }
  std::size_t header_bytes = 0;
  for (const auto& h : hs) header_bytes += header_field_size(h.name, h.value);
  if (header_bytes > options.max_metadata_size)
    co_return errorf(ErrorKind::InvalidArgument, "{}: request headers are {} bytes, over the limit of {}", path,
                     header_bytes, options.max_metadata_size);

  auto stream = session->open_stream(hs, false);
  if (!stream) co_return with_path(path, std::move(stream).error());
  auto ex = co_await asio::this_coro::executor;
  auto st = std::make_shared<Call::State>(std::move(*stream), std::move(path), options.max_recv_message_size, ex, budget);
  if (deadline) {
    st->timer.expires_at(*deadline);
    asio::co_spawn(ex, Call::State::watch(st), asio::detached);
  }
  co_return Call(std::move(st));
}

asio::awaitable<Result<std::string>> unary(std::shared_ptr<h2::Session> session, std::string path, std::string request,
                                           CallOptions options) {
  auto started = co_await start_call(std::move(session), path, std::move(options));
  if (!started) co_return std::move(started).error();
  Call call = std::move(*started);
  auto sent = co_await call.send(std::move(request));
  if (sent) sent = co_await call.close_send();
  if (!sent && sent.error().kind == ErrorKind::InvalidArgument) {
    call.cancel();  // refused locally (too large): the stream is open and the server waits for a request
    co_return std::move(sent).error();
  }
  // Other send failures mean the stream has ended; the server may have answered already (a
  // Trailers-Only error before it read the request), and its status explains more than our write error.
  std::optional<std::string> reply;
  for (;;) {
    auto m = co_await call.recv();
    if (!m) co_return std::move(m).error();
    if (!*m) break;
    if (reply) {
      call.cancel();
      co_return make_error(ErrorKind::GrpcStatus, fmt::format("{}: INTERNAL: more than one response to a unary call", path),
                           static_cast<int>(StatusCode::Internal));
    }
    reply = std::move(**m);
  }
  if (!reply) {
    if (!sent) co_return std::move(sent).error();
    co_return make_error(ErrorKind::GrpcStatus, fmt::format("{}: INTERNAL: no response to a unary call", path),
                         static_cast<int>(StatusCode::Internal));
  }
  co_return std::move(*reply);  // the server answered OK: our write outcome no longer matters
}

}  // namespace ambient::grpc
