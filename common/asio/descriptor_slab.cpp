#include "common/asio/descriptor_slab.h"

#include <algorithm>
#include <cassert>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define AMBIENT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AMBIENT_ASAN 1
#endif
#endif
#if defined(AMBIENT_ASAN)
#include <sanitizer/asan_interface.h>
#define AMBIENT_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define AMBIENT_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define AMBIENT_POISON(p, n) ((void)(p), (void)(n))
#define AMBIENT_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace ambient::asio_support {

namespace {
constexpr std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }
}  // namespace

DescriptorSlab::DescriptorSlab(std::size_t slot_size, std::size_t slot_align)
    : slot_size_(round_up(slot_size, slot_align)), slots_per_block_(kBlockBytes / slot_size_) {
  assert(slot_align <= alignof(std::max_align_t) && slot_size_ <= kBlockBytes);
}

void* DescriptorSlab::allocate() {
  std::lock_guard lock(mu_);
  void* slot = nullptr;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    // Each step that may throw comes before anything is handed out; a new block is kept even then.
    if (carved_ == blocks_.size() * slots_per_block_) {
      std::unique_ptr<std::byte[]> block(new std::byte[kBlockBytes]);  // new[]: aligned to max_align_t
      AMBIENT_POISON(block.get(), kBlockBytes);
      blocks_.push_back(std::move(block));
    }
    // release() must not allocate: free_ has room for every slot carved so far (grown geometrically).
    if (free_.capacity() < carved_ + 1) free_.reserve(std::max(carved_ + 1, 2 * free_.capacity()));
    slot = blocks_.back().get() + (carved_ % slots_per_block_) * slot_size_;
    ++carved_;
  }
  ++in_use_;
  AMBIENT_UNPOISON(slot, slot_size_);
  return slot;
}

void DescriptorSlab::release(void* slot) noexcept {
  if (slot == nullptr) return;
  std::lock_guard lock(mu_);
  AMBIENT_POISON(slot, slot_size_);
  free_.push_back(slot);  // capacity reserved by allocate()
  --in_use_;
}

DescriptorSlab::Stats DescriptorSlab::stats() const {
  std::lock_guard lock(mu_);
  return {in_use_, blocks_.size()};
}

}  // namespace ambient::asio_support
