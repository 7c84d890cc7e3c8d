#pragma once
// CopyBuffer: the bounded, adaptive buffer of one copy direction (ztunnel: src/copy.rs).
//
// Most connections move little data, so a direction starts with 1 KiB; bulk transfers earn larger
// buffers (fewer syscalls and TLS records per byte) once they have proven to be bulk:
//   copied <  128 KiB           -> kInitialSize  =   1 KiB       =   1024 B
//   128 KiB <= copied < 10 MiB  -> kLargeSize    =  16 KiB - 64  =  16320 B
//   copied >= 10 MiB            -> kJumboSize    = 256 KiB - 64  = 262080 B
// Why "- 64": the largest TLS record carries 16 KiB of plaintext. A 16 KiB - 64 read, forwarded into
// an HBONE tunnel, fits with its 9-byte HTTP/2 DATA frame header (and the stream's bookkeeping) into
// one record instead of spilling 9 bytes into a second one. The jumbo size keeps the same slack:
// 16 records' worth, and the allocation stays just below 256 KiB instead of just above it.
// Bound: at most kJumboSize bytes per direction, so 2 * kJumboSize per proxied connection.
// The size never shrinks; contents are not preserved when it grows (it only grows between reads).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace ambient::net {

class CopyBuffer {
 public:
  static constexpr std::size_t kInitialSize = 1024;
  static constexpr std::size_t kLargeSize = 16 * 1024 - 64;
  static constexpr std::size_t kJumboSize = 256 * 1024 - 64;
  static constexpr std::uint64_t kLargeThreshold = 128 * 1024;        // bytes copied before kLargeSize
  static constexpr std::uint64_t kJumboThreshold = 10 * 1024 * 1024;  // bytes copied before kJumboSize

  CopyBuffer();

  // The whole buffer, to read into.
  std::span<std::uint8_t> space() noexcept { return {data_.get(), size_}; }
  std::size_t size() const noexcept { return size_; }
  std::uint64_t copied() const noexcept { return copied_; }

  // Records that `n` more bytes were forwarded; grows the buffer when that crosses a threshold.
  void consumed(std::size_t n);

  // The size the policy gives after `copied` bytes (pure; the table above).
  static std::size_t size_for(std::uint64_t copied) noexcept;

 private:
  std::unique_ptr<std::uint8_t[]> data_;
  std::size_t size_ = 0;
  std::uint64_t copied_ = 0;
};

}  // namespace ambient::net
