#pragma once
// gRPC client calls over one HTTP/2 client session (common/h2/session.h), for the data plane's own
// control-plane traffic: Delta ADS (bidirectional stream) and the Istio CA's CreateCertificate (unary).
// grpc++ is never linked here (DESIGN.md section 2); this is the wire protocol written out.
//
// The caller owns the connection: it connects (TLS via channel_tls.h, or plaintext h2c), creates the
// h2::Session, co_spawns session->run(), and passes the session to the calls below. Every coroutine here
// runs on the session's executor (one io_context thread, no locks).
//
// One call = one HTTP/2 stream:
//   request   HEADERS  :method POST, :scheme, :path /package.Service/Method, :authority,
//                      content-type application/grpc, te trailers, [grpc-timeout], user-agent, metadata
//             DATA     length-prefixed messages (framing.h), END_STREAM at close_send()
//   response  HEADERS  :status 200, content-type application/grpc*, initial metadata
//             DATA     length-prefixed messages
//             HEADERS  trailers: grpc-status, grpc-message, trailing metadata (END_STREAM)
//   or a Trailers-Only response: one HEADERS with :status and grpc-status, END_STREAM.
//
// Deadline: sent as grpc-timeout (the server enforces it) and enforced here: when it passes, the stream
// is reset (RST_STREAM CANCEL) and pending and later operations fail with Timeout, code 4
// (DEADLINE_EXCEEDED). The reset wakes the reader once it is written, so a server that stops
// answering cannot hang a call; a connection whose socket no longer drains is ended by the session's
// PING timeout.
//
// Bounds: a received message ≤ CallOptions::max_recv_message_size (else RESOURCE_EXHAUSTED and the
// stream is reset); request headers ≤ CallOptions::max_metadata_size; received header blocks are
// bounded by the session's Settings::max_header_list; at most one message plus one read chunk (32 KiB)
// is buffered per call beyond the HTTP/2 stream window.
#include <chrono>
#include <concepts>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "common/base/result.h"
#include "common/grpc/framing.h"
#include "common/grpc/status.h"
#include "common/h2/headers.h"
#include "common/h2/session.h"

namespace ambient::grpc {

inline constexpr std::string_view kUserAgent = "ambient-grpc/0.1";

struct CallOptions {
  // Deliberately not an aggregate: GCC 12 miscompiles an aggregate temporary (`{}`, `CallOptions{...}`)
  // with std::string members inside a co_await full-expression (the coroutine parameter is copied
  // bitwise, its SSO pointer then dangles: bad free). A user-declared constructor avoids it.
  CallOptions() = default;

  std::string authority;  // :authority (e.g. "istiod.istio-system.svc:15012"); empty → session->peer()
  std::string scheme = "https";  // :scheme: "https" over TLS, "http" for plaintext h2c
  // Deadline = start_call time + timeout, or `deadline`; the earlier wins. Neither: no deadline.
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  bool send_grpc_timeout = true;  // tell the server (grpc-timeout); the local deadline applies either way
  // Custom metadata, sent in order (e.g. {"authorization", "Bearer <jwt>"}, {"clusterid", "Kubernetes"}).
  // Names are validated (metadata.h); "-bin" values are raw bytes, base64-encoded on the wire.
  h2::Headers metadata;
  std::string user_agent = std::string(kUserAgent);
  std::size_t max_recv_message_size = kDefaultMaxMessageSize;  // ztunnel's xDS client uses 200 MiB
  // Budget for the whole request header list (RFC 9113 accounting: name + value + 32 per field).
  // 8 KiB = grpc++'s default SETTINGS_MAX_HEADER_LIST_SIZE, so a larger request would be refused anyway.
  std::size_t max_metadata_size = 8u << 10;
};

// A streaming call (any of unary, client-, server- or bidirectional streaming on the wire).
//
// Contract:
//   - One reader (recv) and one writer (send / close_send) may run concurrently; never two readers or
//     two writers. The Call must outlive its pending operations: co_await them directly.
//   - recv() returns each message, then nullopt once the server ended the call with OK. A non-OK end is
//     an error: GrpcStatus with the server's code and message, Timeout (code 4) for our deadline,
//     Cancelled (code 1) after cancel(), or the connection's error (Closed, StreamReset, ...).
//     After either, the call is done: recv() repeats the same result, status() and trailers() are final.
//   - send() after close_send() is an error. send() can fail because the server already ended the call
//     (e.g. UNAUTHENTICATED before reading the request): recv() then returns the server's status.
//   - Destroying an unfinished call cancels it (RST_STREAM CANCEL).
class Call {
 public:
  Call(Call&&) noexcept = default;
  Call& operator=(Call&&) noexcept;
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;
  ~Call();

  // Sends one message (framed, then written under HTTP/2 flow control: returns once it is queued).
  boost::asio::awaitable<Result<void>> send(std::string message);
  // Half-closes: END_STREAM after the messages already sent. Idempotent.
  boost::asio::awaitable<Result<void>> close_send();
  // Next message; nullopt at a clean (OK) end. See the contract above.
  boost::asio::awaitable<Result<std::optional<std::string>>> recv();
  // Resets the stream (RST_STREAM CANCEL); pending and later operations fail with Cancelled (code 1).
  void cancel() noexcept;

  // Response headers as metadata (pseudo-headers dropped, -bin decoded); empty until the first message
  // arrives, and empty for a Trailers-Only response.
  const h2::Headers& initial_metadata() const noexcept;
  // Trailing metadata (grpc-status and grpc-message included) once done.
  const h2::Headers& trailers() const noexcept;
  // The final status once done (local failures too: DEADLINE_EXCEEDED, CANCELLED, INTERNAL ...).
  const Status& status() const noexcept;
  bool done() const noexcept;
  const std::string& path() const noexcept;

 private:
  struct State;
  explicit Call(std::shared_ptr<State> st) : st_(std::move(st)) {}
  friend boost::asio::awaitable<Result<Call>> start_call(std::shared_ptr<h2::Session> session, std::string path,
                                                         CallOptions options);
  std::shared_ptr<State> st_;  // shared with the deadline watchdog only
};

// Opens the stream and sends the request headers. `path` is "/package.Service/Method". Errors:
// InvalidArgument (bad path, metadata or over max_metadata_size), Timeout (deadline already passed),
// Closed (session closed or draining).
boost::asio::awaitable<Result<Call>> start_call(std::shared_ptr<h2::Session> session, std::string path,
                                                CallOptions options);

// One request, one response. Errors as Call::recv(), plus GrpcStatus INTERNAL (code 13) when an OK
// call carried no response or more than one.
boost::asio::awaitable<Result<std::string>> unary(std::shared_ptr<h2::Session> session, std::string path,
                                                  std::string request, CallOptions options);

// ---- typed helpers for protobuf messages (templates: the core above does not depend on protobuf) -----

template <typename M>
concept ProtoMessage = requires(const M& cm, M& m, std::string* out, const std::string& in) {
  { cm.SerializeToString(out) } -> std::convertible_to<bool>;
  { m.ParseFromString(in) } -> std::convertible_to<bool>;
};

namespace detail {
inline boost::asio::awaitable<Result<void>> ready(Result<void> r) { co_return r; }

template <ProtoMessage Resp>
boost::asio::awaitable<Result<Resp>> unary_parse(std::shared_ptr<h2::Session> session, std::string path,
                                                 std::string request, CallOptions options) {
  auto bytes = co_await unary(std::move(session), path, std::move(request), std::move(options));
  if (!bytes) co_return std::move(bytes).error();
  Resp resp;
  if (!resp.ParseFromString(*bytes)) co_return errorf(ErrorKind::Parse, "{}: response does not parse", path);
  co_return resp;
}
}  // namespace detail

// Serialises `m` now (so it need not outlive the awaitable) and sends it.
template <ProtoMessage M>
boost::asio::awaitable<Result<void>> send_message(Call& call, const M& m) {
  std::string bytes;
  if (!m.SerializeToString(&bytes))
    return detail::ready(errorf(ErrorKind::InvalidArgument, "{}: request does not serialise", call.path()));
  return call.send(std::move(bytes));
}

// Next message parsed as M; nullopt at a clean end. Parse error when the bytes are not an M.
template <ProtoMessage M>
boost::asio::awaitable<Result<std::optional<M>>> recv_message(Call& call) {
  auto bytes = co_await call.recv();
  if (!bytes) co_return std::move(bytes).error();
  if (!*bytes) co_return std::optional<M>{};
  std::optional<M> m(std::in_place);
  if (!m->ParseFromString(**bytes)) co_return errorf(ErrorKind::Parse, "{}: response does not parse", call.path());
  co_return m;
}

template <ProtoMessage Resp, ProtoMessage Req>
boost::asio::awaitable<Result<Resp>> unary_message(std::shared_ptr<h2::Session> session, std::string path,
                                                   const Req& request, CallOptions options) {
  std::string bytes;
  if (!request.SerializeToString(&bytes)) {
    return [](std::string p) -> boost::asio::awaitable<Result<Resp>> {
      co_return errorf(ErrorKind::InvalidArgument, "{}: request does not serialise", p);
    }(std::move(path));
  }
  return detail::unary_parse<Resp>(std::move(session), std::move(path), std::move(bytes), std::move(options));
}

}  // namespace ambient::grpc
