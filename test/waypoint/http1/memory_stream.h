#pragma once
// MemoryStream: a net::ByteStream over in-memory bytes (test only). read_some hands the input out in
// pieces of at most `piece` bytes (1 = one byte per read: every parser state boundary gets exercised),
// then EOF; writes are collected in `written`.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "common/base/result.h"
#include "common/net/byte_stream.h"

namespace ambient::test {

class MemoryStream {
 public:
  explicit MemoryStream(std::string_view input, std::size_t piece = 1 << 20)
      : input_(input.begin(), input.end()), piece_(std::max<std::size_t>(piece, 1)) {}

  boost::asio::awaitable<Result<std::size_t>> read_some(std::span<std::uint8_t> buf) {
    if (closed_) co_return make_error(ErrorKind::Closed, "MemoryStream closed");
    const std::size_t n = std::min({buf.size(), piece_, input_.size() - pos_});
    if (n > 0) std::memcpy(buf.data(), input_.data() + pos_, n);
    pos_ += n;
    ++reads;
    co_return n;
  }
  boost::asio::awaitable<Result<void>> write_all(std::span<const std::uint8_t> buf) {
    if (closed_ || write_shut) co_return make_error(ErrorKind::Closed, "MemoryStream closed for writing");
    written.append(reinterpret_cast<const char*>(buf.data()), buf.size());
    co_return ok();
  }
  boost::asio::awaitable<Result<void>> shutdown_write() {
    write_shut = true;
    co_return ok();
  }
  void close() { closed_ = true; }

  std::size_t consumed() const { return pos_; }  // input bytes handed out so far

  std::string written;
  bool write_shut = false;
  std::size_t reads = 0;

 private:
  std::vector<std::uint8_t> input_;
  std::size_t pos_ = 0;
  std::size_t piece_;
  bool closed_ = false;
};

static_assert(net::ByteStream<MemoryStream>);

}  // namespace ambient::test
