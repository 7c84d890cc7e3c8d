#include "common/zds/seqpacket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace ambient::zds {

namespace asio = boost::asio;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// One non-blocking sendmsg with `fds` as SCM_RIGHTS: 0, or the errno. A plain function on purpose: the control
// buffer must be a real stack local, because GCC 12 does not honour alignas on a local in a coroutine frame
// (UBSan caught a misaligned cmsghdr there).
int send_once(int socket_fd, std::string_view bytes, const std::vector<int>& fds) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    std::memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  return ::sendmsg(socket_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0 ? 0 : errno;
}

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return errorf(ErrorKind::InvalidArgument, "unix socket path '{}': must be 1..{} bytes", path, sizeof(addr.sun_path) - 1);
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

Error errno_error(ErrorKind kind, std::string what) {
  const int e = errno;
  return Error{kind, fmt::format("{}: {}", what, std::strerror(e)), e};
}

}  // namespace

SeqPacketSocket::SeqPacketSocket(asio::any_io_executor ex, net::UniqueFd fd) : sd_(std::move(ex)) {
  const int raw = fd.release();
  ::fcntl(raw, F_SETFL, ::fcntl(raw, F_GETFL) | O_NONBLOCK);
  sd_.assign(raw);
}

Result<SeqPacketSocket> SeqPacketSocket::connect(asio::any_io_executor ex, const std::string& path) {
  auto addr = unix_address(path);
  if (!addr) return std::move(addr).error();
  net::UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errno_error(ErrorKind::Io, "socket(AF_UNIX, SOCK_SEQPACKET)");
  // A unix connect completes at once (or fails): no need to wait on the reactor.
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    const int e = errno;
    const ErrorKind kind = e == ENOENT ? ErrorKind::NotFound : e == ECONNREFUSED ? ErrorKind::ConnectRefused : ErrorKind::Io;
    return Error{kind, fmt::format("connect to {}: {}", path, std::strerror(e)), e};
  }
  return SeqPacketSocket(std::move(ex), std::move(fd));
}

Result<std::pair<SeqPacketSocket, SeqPacketSocket>> SeqPacketSocket::pair(asio::any_io_executor ex) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return errno_error(ErrorKind::Io, "socketpair");
  return std::pair<SeqPacketSocket, SeqPacketSocket>{SeqPacketSocket(ex, net::UniqueFd(fds[0])),
                                                     SeqPacketSocket(ex, net::UniqueFd(fds[1]))};
}

Result<Packet> SeqPacketSocket::try_receive(bool& would_block) {
  would_block = false;
  Packet p;
  char buf[kMaxPacket];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec iov{buf, sizeof(buf)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = ::recvmsg(sd_.native_handle(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      would_block = true;
      return p;
    }
    if (errno == ECONNRESET) return errorf(ErrorKind::Closed, "zds socket: connection reset by peer");
    return errno_error(ErrorKind::Io, "zds socket: recvmsg");
  }
  // Own every descriptor that arrived before judging the packet: a refused packet must not leak them.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      p.fds.emplace_back(fd);
    }
  }
  if (msg.msg_flags & MSG_TRUNC)
    return errorf(ErrorKind::Parse, "zds packet longer than {} bytes (truncated)", kMaxPacket);
  if (msg.msg_flags & MSG_CTRUNC)
    return errorf(ErrorKind::Parse, "zds packet carried more than {} file descriptors (control data truncated)", kMaxFds);
  if (n == 0 && p.fds.empty()) return errorf(ErrorKind::Closed, "zds socket: peer closed the connection");
  p.bytes.assign(buf, static_cast<std::size_t>(n));
  return p;
}

asio::awaitable<Result<Packet>> SeqPacketSocket::receive() {
  for (;;) {
    bool would_block = false;
    auto r = try_receive(would_block);
    if (!would_block) co_return r;
    auto [ec] = co_await sd_.async_wait(asio::posix::descriptor_base::wait_read, kUseTuple);
    if (ec == asio::error::operation_aborted) co_return errorf(ErrorKind::Cancelled, "zds socket: receive cancelled");
    if (ec) co_return Error{ErrorKind::Io, "zds socket: wait: " + ec.message(), ec.value()};
  }
}

asio::awaitable<Result<Packet>> SeqPacketSocket::receive(std::chrono::milliseconds timeout) {
  using namespace asio::experimental::awaitable_operators;
  for (;;) {
    bool would_block = false;
    auto r = try_receive(would_block);
    if (!would_block) co_return r;
    asio::steady_timer timer(sd_.get_executor());
    timer.expires_after(timeout);
    auto first = co_await (sd_.async_wait(asio::posix::descriptor_base::wait_read, kUseTuple) || timer.async_wait(kUseTuple));
    if (first.index() == 1) co_return errorf(ErrorKind::Timeout, "zds socket: nothing received within {} ms", timeout.count());
    auto [ec] = std::get<0>(first);
    if (ec == asio::error::operation_aborted) co_return errorf(ErrorKind::Cancelled, "zds socket: receive cancelled");
    if (ec) co_return Error{ErrorKind::Io, "zds socket: wait: " + ec.message(), ec.value()};
  }
}

asio::awaitable<Result<void>> SeqPacketSocket::send(std::string_view bytes, std::vector<int> fds) {
  if (bytes.size() > kMaxPacket) co_return errorf(ErrorKind::InvalidArgument, "zds packet of {} bytes exceeds {}", bytes.size(), kMaxPacket);
  if (fds.size() > kMaxFds) co_return errorf(ErrorKind::InvalidArgument, "zds packet with {} fds exceeds {}", fds.size(), kMaxFds);
  for (;;) {
    const int err = send_once(sd_.native_handle(), bytes, fds);
    if (err == 0) co_return ok();
    if (err == EPIPE || err == ECONNRESET) co_return errorf(ErrorKind::Closed, "zds socket: peer closed the connection");
    if (err != EAGAIN && err != EWOULDBLOCK) co_return Error{ErrorKind::Io, fmt::format("zds socket: sendmsg: {}", std::strerror(err)), err};
    auto [ec] = co_await sd_.async_wait(asio::posix::descriptor_base::wait_write, kUseTuple);
    if (ec == asio::error::operation_aborted) co_return errorf(ErrorKind::Cancelled, "zds socket: send cancelled");
    if (ec) co_return Error{ErrorKind::Io, "zds socket: wait: " + ec.message(), ec.value()};
  }
}

void SeqPacketSocket::close() {
  boost::system::error_code ec;
  sd_.close(ec);
}

SeqPacketListener::SeqPacketListener(asio::any_io_executor ex, net::UniqueFd fd, std::string path)
    : sd_(std::move(ex), fd.release()), path_(std::move(path)) {}

Result<SeqPacketListener> SeqPacketListener::listen(asio::any_io_executor ex, const std::string& path, unsigned mode) {
  auto addr = unix_address(path);
  if (!addr) return std::move(addr).error();
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return errorf(ErrorKind::InvalidArgument, "{}: exists and is not a socket (refusing to remove it)", path);
    ::unlink(path.c_str());  // a stale socket from an earlier run
  }
  net::UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return errno_error(ErrorKind::Io, "socket(AF_UNIX, SOCK_SEQPACKET)");
  // The mode is set on the socket before bind(), so the file never exists with wider permissions.
  if (::fchmod(fd.get(), mode) != 0) return errno_error(ErrorKind::Io, "fchmod socket for " + path);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0)
    return errno_error(ErrorKind::Io, "bind " + path);
  if (::listen(fd.get(), 16) != 0) return errno_error(ErrorKind::Io, "listen " + path);
  return SeqPacketListener(std::move(ex), std::move(fd), path);
}

asio::awaitable<Result<SeqPacketSocket>> SeqPacketListener::accept() {
  for (;;) {
    const int c = ::accept4(sd_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c >= 0) co_return SeqPacketSocket(sd_.get_executor(), net::UniqueFd(c));
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
      co_return errno_error(ErrorKind::Io, "accept on " + path_);
    auto [ec] = co_await sd_.async_wait(asio::posix::descriptor_base::wait_read, kUseTuple);
    if (ec == asio::error::operation_aborted) co_return errorf(ErrorKind::Cancelled, "accept on {}: cancelled", path_);
    if (ec) co_return Error{ErrorKind::Io, "accept on " + path_ + ": " + ec.message(), ec.value()};
  }
}

void SeqPacketListener::close() {
  boost::system::error_code ec;
  sd_.close(ec);
}

}  // namespace ambient::zds
