#include "common/tls/tls_stream.h"

#include <openssl/err.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>

#include <openssl/bio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/net/endpoint.h"
#include "common/tls/tls_context.h"

namespace ambient::tls {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::string endpoint_string(const tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  return ec ? "unknown-peer" : net::format_endpoint(ep);
}

// Drains the BoringSSL error queue into one readable string.
std::string drain_errors() {
  std::string out;
  while (uint32_t e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

constexpr std::size_t kMaxSslIo = 1u << 30;  // SSL_read/SSL_write take int lengths

// Read-ahead BIO: BoringSSL asks its BIO for a 5-byte record header and then the record body, which on an
// fd BIO is two read(2) calls per 16 KiB record. This BIO reads up to kReadAhead bytes per syscall and
// serves records from that buffer (allocated at the first read, freed with the SSL). Writes stay on the
// fd BIO. SSL_read drains the buffer before reporting WANT_READ, so readiness waits stay correct.
constexpr std::size_t kReadAhead = 64u << 10;

struct ReadAhead {
  int fd;
  std::unique_ptr<std::uint8_t[]> buf;
  std::size_t off = 0, len = 0;
};

int read_ahead_read(BIO* b, char* out, int outl) {
  auto* ra = static_cast<ReadAhead*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (ra->off == ra->len) {
    if (!ra->buf) ra->buf = std::make_unique<std::uint8_t[]>(kReadAhead);
    const ssize_t n = ::read(ra->fd, ra->buf.get(), kReadAhead);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_read(b);
      return -1;
    }
    if (n == 0) return 0;
    ra->off = 0;
    ra->len = static_cast<std::size_t>(n);
  }
  const std::size_t k = std::min(static_cast<std::size_t>(outl), ra->len - ra->off);
  std::memcpy(out, ra->buf.get() + ra->off, k);
  ra->off += k;
  return static_cast<int>(k);
}

long read_ahead_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int read_ahead_destroy(BIO* b) {
  delete static_cast<ReadAhead*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  return 1;
}

// Write BIO: send(2) with MSG_NOSIGNAL. BoringSSL's own fd and socket BIOs write with write(2) and
// send(fd, 0), which raise SIGPIPE once the connection is gone (EPIPE): the default action would kill the
// whole process, whatever it does with SIGPIPE elsewhere. The fd is the BIO's data; the socket owns it.
int nosignal_write(BIO* b, const char* in, int inl) {
  const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b)));
  BIO_clear_retry_flags(b);
  const ssize_t n = ::send(fd, in, static_cast<std::size_t>(inl), MSG_NOSIGNAL);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(b);
    return -1;
  }
  return static_cast<int>(n);
}

long nosignal_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

const BIO_METHOD* nosignal_write_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* x = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "send-nosignal");
    BIO_meth_set_write(x, nosignal_write);
    BIO_meth_set_ctrl(x, nosignal_ctrl);
    return x;
  }();
  return m;
}

const BIO_METHOD* read_ahead_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* x = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "read-ahead");
    BIO_meth_set_read(x, read_ahead_read);
    BIO_meth_set_ctrl(x, read_ahead_ctrl);
    BIO_meth_set_destroy(x, read_ahead_destroy);
    return x;
  }();
  return m;
}

}  // namespace

TlsStream::TlsStream(tcp::socket socket, bssl::UniquePtr<SSL> ssl)
    : socket_(std::move(socket)), ssl_(std::move(ssl)) {
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  peer_ = endpoint_string(socket_);
  // Neither BIO owns the fd: the asio socket does.
  const int fd = static_cast<int>(socket_.native_handle());
  BIO* rbio = BIO_new(read_ahead_method());
  BIO_set_data(rbio, new ReadAhead{fd, nullptr});
  BIO_set_init(rbio, 1);
  BIO* wbio = BIO_new(nosignal_write_method());
  BIO_set_data(wbio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)));
  BIO_set_init(wbio, 1);
  SSL_set_bio(ssl_.get(), rbio, wbio);  // takes ownership of both
  SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

TlsStream::~TlsStream() = default;

Result<void> TlsStream::fail(const char* op, int ret) {
  const int err = SSL_get_error(ssl_.get(), ret);
  std::string why = verify_failure(ssl_.get());
  const ErrorKind kind = why.empty() ? ErrorKind::TlsHandshake : verify_failure_kind(ssl_.get());
  std::string lib = drain_errors();
  if (why.empty()) why = lib;
  if (why.empty() && err == SSL_ERROR_SYSCALL) why = errno != 0 ? std::strerror(errno) : "connection closed by peer";
  if (why.empty()) why = fmt::format("SSL error {}", err);
  return errorf(kind, "TLS {} with {}: {}", op, peer_, why);
}

asio::awaitable<Result<void>> TlsStream::wait_for(int ssl_error) {
  auto type = ssl_error == SSL_ERROR_WANT_WRITE ? tcp::socket::wait_write : tcp::socket::wait_read;
  auto [ec] = co_await socket_.async_wait(type, asio::as_tuple(asio::use_awaitable));
  if (ec == asio::error::operation_aborted) co_return make_error(ErrorKind::Cancelled, "TLS wait cancelled with " + peer_);
  if (ec) co_return make_error(ErrorKind::Io, fmt::format("TLS wait with {}: {}", peer_, ec.message()));
  co_return ok();
}

asio::awaitable<Result<void>> TlsStream::handshake(std::chrono::milliseconds timeout) {
  asio::steady_timer deadline(socket_.get_executor());
  bool timed_out = false;
  deadline.expires_after(timeout);
  // The frame owns the timer: leaving this coroutine cancels it and the handler only reads its flag.
  deadline.async_wait([this, &timed_out](boost::system::error_code ec) {
    if (ec) return;
    timed_out = true;
    boost::system::error_code ignored;
    socket_.cancel(ignored);
  });
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_.get());
    if (r == 1) break;
    const int err = SSL_get_error(ssl_.get(), r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      auto w = co_await wait_for(err);
      if (!w) {
        close();
        if (timed_out)
          co_return errorf(ErrorKind::Timeout, "TLS handshake with {} timed out after {} ms", peer_, timeout.count());
        co_return w;
      }
      continue;
    }
    auto e = fail("handshake", r);
    close();
    co_return e;
  }
  deadline.cancel();

  const uint8_t* alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(ssl_.get(), &alpn, &alpn_len);
  if (std::string_view(reinterpret_cast<const char*>(alpn), alpn_len) != "h2") {
    close();
    co_return errorf(ErrorKind::TlsHandshake, "TLS handshake with {}: ALPN h2 was not negotiated", peer_);
  }
  if (SSL_version(ssl_.get()) != TLS1_3_VERSION) {
    close();
    co_return errorf(ErrorKind::TlsHandshake, "TLS handshake with {}: negotiated {} instead of TLSv1.3", peer_,
                     SSL_get_version(ssl_.get()));
  }
  co_return ok();
}

asio::awaitable<Result<std::size_t>> TlsStream::read_some(std::span<std::uint8_t> buf) {
  if (buf.empty()) co_return std::size_t{0};
  std::size_t got = 0;
  for (;;) {
    ERR_clear_error();
    errno = 0;
    const std::size_t want = std::min(buf.size() - got, kMaxSslIo);
    const int r = SSL_read(ssl_.get(), buf.data() + got, static_cast<int>(want));
    if (r > 0) {
      got += static_cast<std::size_t>(r);
      if (got == buf.size()) co_return got;
      continue;  // drain what is already decryptable without waiting again
    }
    const int err = SSL_get_error(ssl_.get(), r);
    if (got > 0 && (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)) co_return got;
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      auto w = co_await wait_for(err);
      if (!w) co_return std::move(w).error();
      continue;
    }
    if (got > 0) co_return got;  // report the error on the next call
    // close_notify, or a TCP FIN without close_notify: both are the end of the byte stream here
    // (HTTP/2 framing above detects truncation).
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0))
      co_return std::size_t{0};
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
      const int saved = errno;
      if (saved == ECONNRESET || saved == EPIPE)
        co_return make_error(ErrorKind::Closed, fmt::format("TLS read from {}: connection reset", peer_), saved);
      co_return make_error(ErrorKind::Io, fmt::format("TLS read from {}: {}", peer_, std::strerror(saved)), saved);
    }
    auto e = fail("read", r);
    co_return std::move(e).error();
  }
}

asio::awaitable<Result<void>> TlsStream::write_all(std::span<const std::uint8_t> buf) {
  std::size_t done = 0;
  while (done < buf.size()) {
    ERR_clear_error();
    errno = 0;
    const std::size_t want = std::min(buf.size() - done, kMaxSslIo);
    const int r = SSL_write(ssl_.get(), buf.data() + done, static_cast<int>(want));
    if (r > 0) {
      done += static_cast<std::size_t>(r);
      continue;
    }
    const int err = SSL_get_error(ssl_.get(), r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      auto w = co_await wait_for(err);
      if (!w) co_return w;
      continue;
    }
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
      const int saved = errno;
      co_return make_error(saved == EPIPE || saved == ECONNRESET ? ErrorKind::Closed : ErrorKind::Io,
                           fmt::format("TLS write to {}: {}", peer_, std::strerror(saved)), saved);
    }
    co_return fail("write", r);
  }
  co_return ok();
}

asio::awaitable<Result<void>> TlsStream::shutdown_write() {
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec && ec != asio::error::not_connected)
    co_return make_error(ErrorKind::Io, fmt::format("TLS shutdown to {}: {}", peer_, ec.message()));
  co_return ok();
}

void TlsStream::close() noexcept {
  boost::system::error_code ec;
  if (socket_.is_open()) {
    // Keep the fd number alive until the SSL forgets it: swap its BIOs for ones on fd -1 first.
    SSL_set_fd(ssl_.get(), -1);
    socket_.close(ec);
  }
}

std::optional<SpiffeId> TlsStream::peer_identity() const { return tls::peer_identity(ssl_.get()); }

std::string TlsStream::peer_address() const { return peer_; }

}  // namespace ambient::tls
