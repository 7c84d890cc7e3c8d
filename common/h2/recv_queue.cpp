#include "common/h2/recv_queue.h"

#include <algorithm>
#include <cstring>

namespace ambient::h2 {

namespace {

// Private blocks of the smallest size are recycled per thread (at most kSpareBlocks): in steady state a keep-alive
// stream of small messages allocates nothing per message. Only a block no one else holds goes back.
constexpr std::size_t kSpareBlocks = 64;

std::vector<BlockRef>& spare_blocks() {
  thread_local std::vector<BlockRef> spares;
  return spares;
}

BlockRef new_private_block(std::size_t cap) {
  if (cap == RecvQueue::kMinPrivate) {
    auto& spares = spare_blocks();
    if (!spares.empty()) {
      BlockRef b = std::move(spares.back());
      spares.pop_back();
      b->used = 0;
      return b;
    }
  }
  return std::make_shared<Block>(cap);
}

void release_private_block(BlockRef& b) noexcept {
  if (b && b.use_count() == 1 && b->capacity == RecvQueue::kMinPrivate && !b->live_count) {
    auto& spares = spare_blocks();
    if (spares.size() < kSpareBlocks) {
      try {
        spares.push_back(std::move(b));
      } catch (...) {
      }
    }
  }
  b.reset();
}

}  // namespace

bool RecvQueue::append(const std::uint8_t* data, std::size_t len, const BlockRef* source) {
  if (len == 0) return false;
  size_ += len;
  if (source != nullptr && *source && len >= kMinShared && (*source)->contains(data, len)) {
    pieces_.push_back(Piece{*source, data, len, false});
    return true;
  }
  // Fill the tail private block first: it is contiguous with the tail piece by construction.
  if (head_ < pieces_.size()) {
    Piece& tail = pieces_.back();
    if (tail.owned) {
      Block& b = *tail.block;
      const std::size_t k = std::min(len, b.capacity - b.used);
      std::memcpy(b.bytes.get() + b.used, data, k);
      b.used += k;
      tail.len += k;
      data += k;
      len -= k;
      if (len == 0) return false;
    }
  }
  const std::size_t cap = std::max(len, next_private_);
  next_private_ = std::min(kMaxPrivate, cap * 2);
  auto b = new_private_block(cap);
  std::memcpy(b->bytes.get(), data, len);
  b->used = len;
  const std::uint8_t* at = b->bytes.get();
  pieces_.push_back(Piece{std::move(b), at, len, true});
  return false;
}

std::span<const std::uint8_t> RecvQueue::front() const noexcept {
  if (head_ == pieces_.size()) return {};
  return {pieces_[head_].data, pieces_[head_].len};
}

void RecvQueue::pop(std::size_t n) noexcept {
  n = std::min(n, size_);
  size_ -= n;
  if (size_ == 0) {  // the common case: everything read; no block stays behind
    clear();
    return;
  }
  while (n > 0) {
    Piece& p = pieces_[head_];
    const std::size_t k = std::min(n, p.len);
    p.data += k;
    p.len -= k;
    n -= k;
    if (p.len == 0) {  // never the tail: size_ > 0 keeps bytes behind it
      if (p.owned) release_private_block(p.block);
      else p.block.reset();
      ++head_;
    }
  }
  if (head_ > 32 && head_ * 2 > pieces_.size()) {
    pieces_.erase(pieces_.begin(), pieces_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

std::size_t RecvQueue::copy_out(std::span<std::uint8_t> out) noexcept {
  std::size_t done = 0;
  while (done < out.size() && size_ > 0) {
    const auto f = front();  // non-empty: no queued piece is empty
    const std::size_t k = std::min(out.size() - done, f.size());
    std::memcpy(out.data() + done, f.data(), k);
    pop(k);
    done += k;
  }
  return done;
}

void RecvQueue::clear() noexcept {
  for (auto& p : pieces_)
    if (p.owned) release_private_block(p.block);
  pieces_.clear();
  head_ = 0;
  size_ = 0;
  next_private_ = kMinPrivate;  // growth follows the backlog, not the stream's history
}

std::size_t RecvQueue::shared_pieces() const noexcept {
  return static_cast<std::size_t>(
      std::count_if(pieces_.begin() + static_cast<std::ptrdiff_t>(head_), pieces_.end(), [](const Piece& p) { return !p.owned; }));
}

}  // namespace ambient::h2
