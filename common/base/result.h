#pragma once
// Result<T>: the project's one closed error vocabulary (no exceptions on the data path).
// Shaped like C++23 std::expected (has_value/value/error/operator*), so moving to it is a rename.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace ambient {

// Every failure in the tree is one of these. Add a value only with a comment saying when it is used.
enum class ErrorKind : std::uint8_t {
  InvalidArgument,     // caller or configuration gave a value we refuse (bad flag, bad YAML field, bad PEM)
  Parse,               // bytes from a peer or a file did not parse (protobuf, HTTP, SOCKS5, authority)
  NotFound,            // a lookup found nothing (file, workload, identity)
  Io,                  // a socket or file operation failed (errno in context)
  ConnectRefused,      // TCP connect refused or unreachable
  Timeout,             // a deadline passed (connect, handshake, ping, gRPC deadline)
  Closed,              // the peer closed the connection or stream (EOF) where more was expected
  Cancelled,           // we stopped the operation ourselves (drain, shutdown, caller gave up)
  TlsHandshake,        // TLS failed: protocol version, ALPN, alert, chain verification
  PeerIdentity,        // TLS verified but the peer's SPIFFE identity is not one we accept
  Certificate,         // creating, signing or loading a certificate or key failed
  H2Protocol,          // the HTTP/2 peer broke the protocol (GOAWAY sent or received with an error)
  StreamReset,         // an HTTP/2 stream was reset (code holds the HTTP/2 error code)
  HttpStatus,          // a response carried a non-success HTTP status (code holds it)
  GrpcStatus,          // a gRPC call ended with a non-OK grpc-status (code holds it)
  ResourceExhausted,   // a bound was hit: concurrent streams, buffer budget, connection limit
  PolicyDenied,        // authorization refused the connection
  Unsupported,         // a valid request for something we do not do
  Internal,            // a bug or a library failure we cannot attribute to a peer
};

std::string_view to_string(ErrorKind kind) noexcept;

struct Error {
  ErrorKind kind = ErrorKind::Internal;
  std::string context;  // what, where, why, readable by an operator
  int code = 0;         // HTTP status, gRPC status, HTTP/2 error code or errno when meaningful

  std::string message() const;
};

inline Error make_error(ErrorKind kind, std::string context, int code = 0) {
  return Error{kind, std::move(context), code};
}

template <typename... Args>
Error errorf(ErrorKind kind, fmt::format_string<Args...> f, Args&&... args) {
  return Error{kind, fmt::format(f, std::forward<Args>(args)...), 0};
}

template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Error>, "Result<Error> is ambiguous");

 public:
  Result(const T& v) : v_(std::in_place_index<0>, v) {}                   // NOLINT(implicit)
  Result(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}             // NOLINT(implicit)
  Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}           // NOLINT(implicit)
  template <typename U, typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                    !std::is_same_v<std::decay_t<U>, T> &&
                                                    !std::is_same_v<std::decay_t<U>, Error>>>
  Result(U&& v) : v_(std::in_place_index<0>, T(std::forward<U>(v))) {}   // NOLINT(implicit)

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

  template <typename U>
  T value_or(U&& fallback) const& { return has_value() ? value() : T(std::forward<U>(fallback)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : err_(std::move(e)) {}  // NOLINT(implicit)

  bool has_value() const noexcept { return !err_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  void value() const {}
  const Error& error() const& { return *err_; }
  Error&& error() && { return std::move(*err_); }

 private:
  std::optional<Error> err_;
};

inline Result<void> ok() { return {}; }

}  // namespace ambient

template <>
struct fmt::formatter<ambient::Error> : fmt::formatter<std::string> {
  auto format(const ambient::Error& e, format_context& ctx) const {
    return fmt::formatter<std::string>::format(e.message(), ctx);
  }
};

// Propagate an error from an expression returning Result<...>; evaluates to nothing.
#define AMBIENT_TRY(expr)                                  \
  do {                                                     \
    auto&& ambient_try_r_ = (expr);                        \
    if (!ambient_try_r_) return std::move(ambient_try_r_).error(); \
  } while (0)

// The same inside a coroutine (co_return); `expr` may contain co_await.
#define AMBIENT_CO_TRY(expr)                                  \
  do {                                                        \
    auto&& ambient_try_r_ = (expr);                           \
    if (!ambient_try_r_) co_return std::move(ambient_try_r_).error(); \
  } while (0)
