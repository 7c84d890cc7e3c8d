#pragma once
// PrefixedStream: a ByteStream whose reads first return bytes already read from the stream underneath (the
// protocol sniff's), then read through. Writes, half-close and close go straight through.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/net/byte_stream.h"

namespace ambient::waypoint {

template <net::ByteStream S>
class PrefixedStream {
 public:
  PrefixedStream(S& s, std::vector<std::uint8_t> prefix) : s_(s), prefix_(std::move(prefix)) {}

  boost::asio::awaitable<Result<std::size_t>> read_some(std::span<std::uint8_t> buf) {
    if (off_ < prefix_.size()) {
      const std::size_t n = std::min(buf.size(), prefix_.size() - off_);
      std::memcpy(buf.data(), prefix_.data() + off_, n);
      off_ += n;
      if (off_ == prefix_.size()) {
        prefix_.clear();
        prefix_.shrink_to_fit();
        off_ = 0;
      }
      co_return n;
    }
    co_return co_await s_.read_some(buf);
  }
  boost::asio::awaitable<Result<void>> write_all(std::span<const std::uint8_t> buf) { return s_.write_all(buf); }
  boost::asio::awaitable<Result<void>> shutdown_write() { return s_.shutdown_write(); }
  void close() noexcept { s_.close(); }

 private:
  S& s_;
  std::vector<std::uint8_t> prefix_;
  std::size_t off_ = 0;
};

}  // namespace ambient::waypoint
