#pragma once
// Upstream byte pipes of the waypoint, type-erased as h2::Transport so the HTTP/1 exchange and the opaque copy
// are written once: an HBONE CONNECT stream (captured pods: to the endpoint's ztunnel on 15008) or a plain TCP
// connection (workloads outside the mesh).
#include <memory>

#include "common/h2/stream.h"
#include "common/h2/transport.h"

namespace ambient::waypoint {

// A ByteStream over a shared HTTP/2 stream (the session keeps the other reference). close() resets it.
class SharedStream {
 public:
  explicit SharedStream(std::shared_ptr<h2::Stream> s) : s_(std::move(s)) {}
  boost::asio::awaitable<Result<std::size_t>> read_some(std::span<std::uint8_t> buf) { return s_->read_some(buf); }
  boost::asio::awaitable<Result<void>> write_all(std::span<const std::uint8_t> buf) { return s_->write_all(buf); }
  boost::asio::awaitable<Result<void>> shutdown_write() { return s_->shutdown_write(); }
  void close() noexcept { s_->close(); }
  h2::Stream& stream() noexcept { return *s_; }

 private:
  std::shared_ptr<h2::Stream> s_;
};

}  // namespace ambient::waypoint
