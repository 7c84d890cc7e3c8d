#include "common/net/block.h"

#include <algorithm>
#include <vector>

namespace ambient::net::block_pool {

namespace {

struct Cache {
  struct Entry {
    std::size_t cap;
    std::unique_ptr<std::uint8_t[]> bytes;
  };
  std::vector<Entry> free;  // most recently given last (warmest in cache)
  std::size_t bytes = 0;
};

Cache& cache() {
  thread_local Cache c;
  return c;
}

}  // namespace

std::unique_ptr<std::uint8_t[]> take(std::size_t cap) {
  if (cap >= kMinPooled) {
    auto& c = cache();
    for (auto it = c.free.rbegin(); it != c.free.rend(); ++it) {
      if (it->cap != cap) continue;
      auto bytes = std::move(it->bytes);
      c.bytes -= cap;
      c.free.erase(std::next(it).base());
      return bytes;
    }
  }
  return std::unique_ptr<std::uint8_t[]>(new std::uint8_t[cap]);
}

void give(std::unique_ptr<std::uint8_t[]> bytes, std::size_t cap) noexcept {
  if (!bytes || cap < kMinPooled) return;
  auto& c = cache();
  if (c.bytes + cap > kPoolBytes) return;  // frees `bytes`
  try {
    c.free.push_back({cap, std::move(bytes)});
    c.bytes += cap;
  } catch (...) {
  }
}

std::size_t cached_bytes() noexcept { return cache().bytes; }

}  // namespace ambient::net::block_pool
