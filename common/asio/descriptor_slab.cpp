#include "common/asio/descriptor_slab.h"

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
    if (blocks_.empty() || carved_in_last_ == slots_per_block_) {
      blocks_.reserve(blocks_.size() + 1);  // may throw before anything changed
      blocks_.emplace_back(new std::byte[kBlockBytes]);  // new[]: aligned to max_align_t
      AMBIENT_POISON(blocks_.back().get(), kBlockBytes);
      carved_in_last_ = 0;
    }
    slot = blocks_.back().get() + carved_in_last_ * slot_size_;
    ++carved_in_last_;
  }
  free_.reserve(free_.size() + 1);  // release() never allocates: room for this slot's return
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
