#pragma once
// RecvQueue: one stream's received, unread DATA as a queue of pieces that never move once queued.
//
// - A piece either owns a private copy or shares a read block of the session (zero copy: the bytes
//   stay where TLS decrypted them). Only pieces of at least kMinShared bytes are shared, and only
//   while the session lends few enough blocks (Session: kMaxLentBlocks), so a connection pins at most
//   that many blocks beyond its flow-control windows. Smaller pieces are copied into private blocks
//   (1 KiB, doubling up to 64 KiB while a backlog builds; back to 1 KiB whenever the queue drains, so
//   a keep-alive stream of small requests never allocates large blocks). 1 KiB blocks no one else holds are
//   recycled through a small per-thread list when drained or destroyed.
// - front() stays valid until pop() consumes it, clear(), or the queue's destruction: a copy loop may
//   hand it to the kernel while more data is queued behind it.
// - Memory is released as pieces are consumed; an empty queue holds no block.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/net/block.h"

namespace ambient::h2 {

using net::Block;
using net::BlockRef;

class RecvQueue {
 public:
  RecvQueue() = default;
  ~RecvQueue() { clear(); }  // recycles its small private blocks (recv_queue.cpp)
  RecvQueue(const RecvQueue&) = delete;
  RecvQueue& operator=(const RecvQueue&) = delete;

  static constexpr std::size_t kMinPrivate = 1024;
  static constexpr std::size_t kMaxPrivate = 64u << 10;
  static constexpr std::size_t kMinShared = 4u << 10;

  // Queues `len` bytes at `data`. `source` is the block `data` points into when the caller may lend
  // it: then a piece of at least kMinShared bytes is shared instead of copied.
  // Returns true when the piece was shared.
  bool append(const std::uint8_t* data, std::size_t len, const BlockRef* source = nullptr);

  // The first contiguous run of unread bytes (empty when the queue is empty).
  std::span<const std::uint8_t> front() const noexcept;
  // Consumes the first n bytes (n <= size()).
  void pop(std::size_t n) noexcept;
  // Copies up to out.size() bytes out and consumes them; returns the count.
  std::size_t copy_out(std::span<std::uint8_t> out) noexcept;
  void clear() noexcept;

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t shared_pieces() const noexcept;  // for tests
  std::size_t next_private_capacity() const noexcept { return next_private_; }  // for tests

 private:
  struct Piece {
    BlockRef block;
    const std::uint8_t* data;
    std::size_t len;
    bool owned;  // a private block this queue may append to
  };
  std::vector<Piece> pieces_;  // pieces_[head_..] are live
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  std::size_t next_private_ = kMinPrivate;  // capacity of the next private block
};

}  // namespace ambient::h2
