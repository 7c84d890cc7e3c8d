#pragma once
// TcpStream: a ByteStream (common/net/byte_stream.h) over one connected boost::asio::ip::tcp::socket,
// plus the listen / accept / connect helpers that produce one.
//
// Contract (beyond ByteStream's):
//  - read_some() returns 0 only at EOF (peer's FIN). An empty buffer is InvalidArgument, since a
//    0-byte read would be indistinguishable from EOF. A reset is an error even when the kernel
//    already reported it to the concurrent write and hands the read a plain EOF (checked through
//    TCP_INFO while our side is not shut down): a proxy must not forward an upstream reset as a
//    FIN, or a truncated response would look complete downstream.
//  - shutdown_write() is shutdown(SHUT_WR): a FIN after the bytes already queued; reads go on.
//  - close() is abortive (SO_LINGER 0, then close: the peer sees RST, queued bytes are dropped) and
//    completes pending read_some/write_all with ErrorKind::Cancelled. It is the error path.
//  - The destructor closes gracefully: bytes already written still reach the peer, then FIN.
//  - Errors: Io (Cancelled for our own close) with code = errno and the peer "ip:port" in the context.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"
#include "common/net/byte_stream.h"

namespace ambient::net {

class TcpStream {
 public:
  // `socket` must be connected (accepted or after connect).
  explicit TcpStream(boost::asio::ip::tcp::socket socket);
  TcpStream(TcpStream&&) noexcept = default;
  TcpStream& operator=(TcpStream&&) noexcept = default;
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;
  ~TcpStream() = default;

  boost::asio::awaitable<Result<std::size_t>> read_some(std::span<std::uint8_t> buf);
  boost::asio::awaitable<Result<void>> write_all(std::span<const std::uint8_t> buf);
  boost::asio::awaitable<Result<void>> shutdown_write();
  void close() noexcept;

  boost::asio::ip::tcp::socket& socket() noexcept { return socket_; }
  const boost::asio::ip::tcp::endpoint& peer() const noexcept { return peer_; }  // cached at construction
  boost::asio::any_io_executor get_executor() { return socket_.get_executor(); }

 private:
  Error io_error(const char* op, const boost::system::error_code& ec) const;
  // After a read returned EOF: was it really a reset whose error another operation consumed?
  bool reset_seen_as_eof();

  boost::asio::ip::tcp::socket socket_;
  boost::asio::ip::tcp::endpoint peer_;
  bool write_shut_ = false;  // shutdown_write() succeeded
};

static_assert(ByteStream<TcpStream>);

struct ListenOptions {
  bool reuseport = false;  // SO_REUSEPORT (one listener per worker; overlap during upgrades)
  int backlog = 128;       // listen(2) backlog; ztunnel's in-pod listeners use 128
};

// Opens, binds and listens synchronously (so it can run inside in_netns()). Always sets SO_REUSEADDR;
// an unspecified IPv6 address ([::]) is bound dual-stack. Errors name the endpoint and the step.
Result<boost::asio::ip::tcp::acceptor> listen(const boost::asio::any_io_executor& ex,
                                              const boost::asio::ip::tcp::endpoint& ep,
                                              const ListenOptions& opts = {});

// Accepts one connection and sets TCP_NODELAY on it (a proxy forwards what it has; Nagle would only
// delay small writes). Cancelled when the acceptor is closed; other errors (EMFILE...) are Io and the
// caller backs off before retrying.
boost::asio::awaitable<Result<TcpStream>> accept(boost::asio::ip::tcp::acceptor& acceptor);

// Connects a new socket (on the calling coroutine's executor) to `ep` and sets TCP_NODELAY. Timeout
// after `timeout`, ConnectRefused for refused/unreachable, Io otherwise.
boost::asio::awaitable<Result<TcpStream>> connect(boost::asio::ip::tcp::endpoint ep,
                                                  std::chrono::milliseconds timeout);

// Same with a socket the caller prepared: opened inside a netns, marked, bound to a source address.
// Opened here if it is not open yet.
boost::asio::awaitable<Result<TcpStream>> connect(boost::asio::ip::tcp::socket socket,
                                                  boost::asio::ip::tcp::endpoint ep,
                                                  std::chrono::milliseconds timeout);

}  // namespace ambient::net
