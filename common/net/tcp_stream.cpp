#include "common/net/tcp_stream.h"

#include "common/net/endpoint.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include "common/net/socket_options.h"

namespace ambient::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

std::string to_string(const tcp::endpoint& ep) { return format_endpoint(ep); }

ErrorKind kind_of(const error_code& ec) {
  if (ec == asio::error::operation_aborted) return ErrorKind::Cancelled;
  return ErrorKind::Io;
}

ErrorKind connect_kind_of(const error_code& ec) {
  if (ec == asio::error::connection_refused || ec == asio::error::host_unreachable ||
      ec == asio::error::network_unreachable) {
    return ErrorKind::ConnectRefused;
  }
  if (ec == asio::error::timed_out) return ErrorKind::Timeout;
  return kind_of(ec);
}

Error listen_error(const char* step, const tcp::endpoint& ep, const error_code& ec) {
  return Error{ErrorKind::Io, fmt::format("listen on {}: {}: {}", to_string(ep), step, ec.message()), ec.value()};
}

}  // namespace

TcpStream::TcpStream(tcp::socket socket) : socket_(std::move(socket)) {
  error_code ec;
  peer_ = socket_.remote_endpoint(ec);  // stays unspecified if the peer is already gone
}

asio::awaitable<Result<std::size_t>> TcpStream::read_some(std::span<std::uint8_t> buf) {
  if (buf.empty()) co_return errorf(ErrorKind::InvalidArgument, "tcp read from {}: empty buffer", to_string(peer_));
  auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf.data(), buf.size()), kUseTuple);
  if (ec == asio::error::eof) {
    if (reset_seen_as_eof()) co_return io_error("read from", asio::error::connection_reset);
    co_return std::size_t{0};
  }
  if (ec) co_return io_error("read from", ec);
  co_return n;
}

asio::awaitable<Result<void>> TcpStream::write_all(std::span<const std::uint8_t> buf) {
  if (buf.empty()) co_return ok();
  auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(buf.data(), buf.size()), kUseTuple);
  if (ec) co_return io_error("write to", ec);
  co_return ok();
}

asio::awaitable<Result<void>> TcpStream::shutdown_write() {
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return io_error("shutdown(SHUT_WR) of", ec);
  write_shut_ = true;
  co_return ok();
}

bool TcpStream::reset_seen_as_eof() {
  // Linux reports a received RST (sk_err) to one syscall only; the other pending operation then reads
  // EOF. Tell the two apart by the TCP state: a FIN leaves an unshut socket in CLOSE_WAIT, a RST in
  // CLOSE. Once we have sent our own FIN, a clean close also ends in CLOSE (via TIME_WAIT), so then
  // EOF is taken at its word.
  if (write_shut_) return false;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return false;
  return info.tcpi_state == TCP_CLOSE;
}

void TcpStream::close() noexcept {
  if (!socket_.is_open()) return;
  error_code ec;
  socket_.set_option(asio::socket_base::linger(true, 0), ec);  // RST: the peer must see an abort, not EOF
  socket_.close(ec);                                           // completes pending ops: operation_aborted
}

Error TcpStream::io_error(const char* op, const error_code& ec) const {
  return Error{kind_of(ec), fmt::format("tcp {} {}: {}", op, to_string(peer_), ec.message()), ec.value()};
}

Result<tcp::acceptor> listen(const asio::any_io_executor& ex, const tcp::endpoint& ep, const ListenOptions& opts) {
  tcp::acceptor acceptor(ex);
  error_code ec;
  acceptor.open(ep.protocol(), ec);
  if (ec) return listen_error("socket()", ep, ec);
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return listen_error("SO_REUSEADDR", ep, ec);
  if (opts.reuseport) {
    auto r = set_reuseport(acceptor.native_handle());
    if (!r) {
      auto e = std::move(r).error();
      e.context = fmt::format("listen on {}: {}", to_string(ep), e.context);
      return e;
    }
  }
  if (ep.address().is_v6() && ep.address().is_unspecified()) {
    acceptor.set_option(asio::ip::v6_only(false), ec);  // [::] takes IPv4 too, as ztunnel's listeners do
    if (ec) return listen_error("IPV6_V6ONLY=0", ep, ec);
  }
  acceptor.bind(ep, ec);
  if (ec) return listen_error("bind()", ep, ec);
  acceptor.listen(opts.backlog, ec);
  if (ec) return listen_error("listen()", ep, ec);
  return acceptor;
}

asio::awaitable<Result<TcpStream>> accept(tcp::acceptor& acceptor) {
  auto [ec, socket] = co_await acceptor.async_accept(kUseTuple);
  if (ec) {
    error_code lec;
    const auto local = acceptor.local_endpoint(lec);
    co_return Error{kind_of(ec), fmt::format("accept on {}: {}", to_string(local), ec.message()), ec.value()};
  }
  // A proxy forwards what it has; Nagle would only add latency to small writes.
  if (auto r = set_nodelay(socket.native_handle()); !r) co_return std::move(r).error();
  co_return TcpStream(std::move(socket));
}

asio::awaitable<Result<TcpStream>> connect(tcp::endpoint ep, std::chrono::milliseconds timeout) {
  co_return co_await connect(tcp::socket(co_await asio::this_coro::executor), ep, timeout);
}

asio::awaitable<Result<TcpStream>> connect(tcp::socket socket, tcp::endpoint ep, std::chrono::milliseconds timeout) {
  using namespace asio::experimental::awaitable_operators;
  error_code ec;
  if (!socket.is_open()) {
    socket.open(ep.protocol(), ec);
    if (ec) co_return Error{ErrorKind::Io, fmt::format("connect to {}: socket(): {}", to_string(ep), ec.message()), ec.value()};
  }
  asio::steady_timer timer(socket.get_executor());
  timer.expires_after(timeout);
  // `||` cancels the loser: on timeout the pending connect is aborted and the socket, still owned by
  // this frame, is closed when the coroutine returns.
  auto first = co_await (socket.async_connect(ep, kUseTuple) || timer.async_wait(kUseTuple));
  if (first.index() == 1) {
    co_return errorf(ErrorKind::Timeout, "connect to {}: no answer within {} ms", to_string(ep), timeout.count());
  }
  if (auto [cec] = std::get<0>(first); cec) {
    co_return Error{connect_kind_of(cec), fmt::format("connect to {}: {}", to_string(ep), cec.message()), cec.value()};
  }
  if (auto r = set_nodelay(socket.native_handle()); !r) co_return std::move(r).error();
  co_return TcpStream(std::move(socket));
}

}  // namespace ambient::net
