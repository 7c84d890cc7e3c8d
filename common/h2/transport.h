#pragma once
// Transport: the byte pipe under an HTTP/2 session (TLS for HBONE and xDS, plain TCP for h2c tests).
// Type-erased once per connection so the session is not a template; one virtual call per read/write
// of up to a batch of TLS records is noise next to the crypto.
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/net/byte_stream.h"

namespace ambient::h2 {

class Transport {
 public:
  virtual ~Transport() = default;
  virtual boost::asio::awaitable<Result<std::size_t>> read_some(std::span<std::uint8_t> buf) = 0;
  virtual boost::asio::awaitable<Result<void>> write_all(std::span<const std::uint8_t> buf) = 0;
  virtual boost::asio::awaitable<Result<void>> shutdown_write() = 0;
  virtual void close() noexcept = 0;
};

template <net::ByteStream S>
class StreamTransport final : public Transport {
 public:
  explicit StreamTransport(S s) : s_(std::move(s)) {}
  boost::asio::awaitable<Result<std::size_t>> read_some(std::span<std::uint8_t> buf) override { return s_.read_some(buf); }
  boost::asio::awaitable<Result<void>> write_all(std::span<const std::uint8_t> buf) override { return s_.write_all(buf); }
  boost::asio::awaitable<Result<void>> shutdown_write() override { return s_.shutdown_write(); }
  void close() noexcept override { s_.close(); }
  S& stream() noexcept { return s_; }

 private:
  S s_;
};

template <net::ByteStream S>
std::unique_ptr<Transport> make_transport(S s) {
  return std::make_unique<StreamTransport<S>>(std::move(s));
}

}  // namespace ambient::h2
