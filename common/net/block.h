#pragma once
// Block: a heap buffer shared by reference between the code that filled it and the code that still
// has to write or read it (zero-copy hand-offs: an HTTP/2 session's read blocks lent to its streams,
// a copy loop's read buffer queued on an HTTP/2 session for the TLS write). Single-threaded: all
// holders run on one io_context.
//
// Blocks of 16 KiB and more come from a small per-thread cache (block_pool.cpp): bulk transfers cycle
// through the same few sizes, and fresh heap pages would cost a page fault per 4 KiB on every block.
// The cache holds at most kPoolBytes per thread; anything beyond goes back to the heap.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace ambient::net {

namespace block_pool {
constexpr std::size_t kMinPooled = 16u << 10;
constexpr std::size_t kPoolBytes = 2u << 20;
std::unique_ptr<std::uint8_t[]> take(std::size_t cap);
void give(std::unique_ptr<std::uint8_t[]> bytes, std::size_t cap) noexcept;
std::size_t cached_bytes() noexcept;  // this thread's cache, for tests
}  // namespace block_pool

struct Block {
  explicit Block(std::size_t cap) : bytes(block_pool::take(cap)), capacity(cap) {}
  ~Block() {
    if (live_count) --*live_count;
    block_pool::give(std::move(bytes), capacity);
  }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;

  std::span<std::uint8_t> space() noexcept { return {bytes.get(), capacity}; }
  bool contains(const std::uint8_t* p, std::size_t len) const noexcept {
    return p >= bytes.get() && p + len <= bytes.get() + capacity;
  }

  std::unique_ptr<std::uint8_t[]> bytes;
  std::size_t capacity;
  std::size_t used = 0;                     // for owners that fill it incrementally
  std::shared_ptr<std::size_t> live_count;  // optional: an owner's count of its live blocks
};
using BlockRef = std::shared_ptr<Block>;

}  // namespace ambient::net
