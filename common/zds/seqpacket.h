#pragma once
// SeqPacketSocket / SeqPacketListener: the ZDS transport (reference cni-charts.md 4): AF_UNIX SOCK_SEQPACKET,
// one message per packet, no length prefix, optional file descriptors as SCM_RIGHTS ancillary data.
//
// Bounds: a packet is at most kMaxPacket (1024) bytes and carries at most kMaxFds descriptors; a longer
// packet (MSG_TRUNC) or more descriptors (MSG_CTRUNC) is an error, and the descriptors that did arrive are
// closed. Received descriptors are close-on-exec (MSG_CMSG_CLOEXEC). Sends use MSG_NOSIGNAL (no SIGPIPE).
// Both types run on one executor; the socket is non-blocking and waits with the executor's reactor.
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "common/base/result.h"
#include "common/net/fd.h"

namespace ambient::zds {

inline constexpr std::size_t kMaxPacket = 1024;
inline constexpr std::size_t kMaxFds = 4;  // room to *see* (and refuse) a second fd; Add carries exactly one

struct Packet {
  std::string bytes;
  std::vector<net::UniqueFd> fds;
};

class SeqPacketSocket {
 public:
  SeqPacketSocket(boost::asio::any_io_executor ex, net::UniqueFd fd);
  // Connects to a listening SOCK_SEQPACKET socket at `path`. NotFound if no file, ConnectRefused if nobody listens.
  static Result<SeqPacketSocket> connect(boost::asio::any_io_executor ex, const std::string& path);
  // A connected pair (tests).
  static Result<std::pair<SeqPacketSocket, SeqPacketSocket>> pair(boost::asio::any_io_executor ex);

  // Next packet. Closed on EOF; Parse when truncated (> kMaxPacket bytes or > kMaxFds fds); Io otherwise.
  boost::asio::awaitable<Result<Packet>> receive();
  // Same, Timeout after `timeout` with nothing received (the socket stays usable).
  boost::asio::awaitable<Result<Packet>> receive(std::chrono::milliseconds timeout);
  // Sends one packet; `fds` travel as SCM_RIGHTS (the caller keeps ownership). Closed on EPIPE.
  boost::asio::awaitable<Result<void>> send(std::string_view bytes, std::vector<int> fds = {});

  int native_handle() { return sd_.native_handle(); }
  bool is_open() const { return sd_.is_open(); }
  void close();
  boost::asio::any_io_executor get_executor() { return sd_.get_executor(); }

 private:
  Result<Packet> try_receive(bool& would_block);
  boost::asio::posix::stream_descriptor sd_;
};

class SeqPacketListener {
 public:
  // Removes a stale socket file at `path`, binds, listens (mode 0600 unless `mode` says otherwise).
  static Result<SeqPacketListener> listen(boost::asio::any_io_executor ex, const std::string& path, unsigned mode = 0600);
  boost::asio::awaitable<Result<SeqPacketSocket>> accept();
  void close();
  const std::string& path() const { return path_; }

 private:
  SeqPacketListener(boost::asio::any_io_executor ex, net::UniqueFd fd, std::string path);
  boost::asio::posix::stream_descriptor sd_;
  std::string path_;
};

}  // namespace ambient::zds
