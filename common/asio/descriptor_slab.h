#pragma once
// DescriptorSlab: fixed-size slots carved side by side from 64 KiB blocks; home of Asio's per-socket reactor
// state (asio_compiled.cpp places every epoll_reactor::descriptor_state here).
//
// Why: Asio's epoll reactor keeps one descriptor_state (168 bytes) for each socket open at once, in a pool that
// reuses them and never shrinks until its io_context is destroyed. From malloc, each one lands between the
// ~16 KiB its connection allocates next, so once a storm's connections close, every 4 KiB page holding one
// stays resident and malloc_trim cannot return it: 19,500 connections left ~80 MB per ztunnel behind
// (bench/hardening storm). From the slab they sit together (3.4 MB for 20,000) and the memory of the
// connections around them goes back whole.
//
// Limits: a released slot is reused by the next allocate(); blocks are kept until exit, as Asio keeps its
// pool. allocate() and release() take a mutex: Asio calls them only when a reactor's pool grows past its
// peak and when an io_context is destroyed, never per read or write. Released slots are poisoned under ASan.
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace ambient::asio_support {

class DescriptorSlab {
 public:
  static constexpr std::size_t kBlockBytes = 64 * 1024;

  struct Stats {
    std::size_t in_use = 0;  // slots handed out and not released
    std::size_t blocks = 0;  // 64 KiB blocks carved so far
  };

  // slot_size and slot_align: the object's; slot_align at most alignof(std::max_align_t).
  DescriptorSlab(std::size_t slot_size, std::size_t slot_align);
  DescriptorSlab(const DescriptorSlab&) = delete;
  DescriptorSlab& operator=(const DescriptorSlab&) = delete;

  // Memory for one object of slot_size bytes. Throws std::bad_alloc like operator new (Asio's own pool
  // allocates with new at this point).
  void* allocate();
  // Takes back a slot from allocate(); the object in it must already be destroyed.
  void release(void* slot) noexcept;

  Stats stats() const;
  std::size_t slot_size() const noexcept { return slot_size_; }

 private:
  const std::size_t slot_size_;
  const std::size_t slots_per_block_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<std::byte[]>> blocks_;
  std::size_t carved_ = 0;   // slots ever handed out for the first time; all but the newest block are full
  std::vector<void*> free_;  // released slots, reused last-in first-out; capacity >= carved_
  std::size_t in_use_ = 0;
};

// The slab that holds the descriptor_state of every epoll reactor in this process (never destroyed, so a
// reactor torn down during static destruction still finds it).
DescriptorSlab& reactor_descriptor_slab();

}  // namespace ambient::asio_support
