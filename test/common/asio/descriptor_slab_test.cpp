#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/asio/descriptor_slab.h"

using ambient::asio_support::DescriptorSlab;
using ambient::asio_support::reactor_descriptor_slab;

TEST_SUITE("common/asio/descriptor_slab") {
  TEST_CASE("slots are carved side by side, reused after release, and a block holds 64 KiB of them") {
    DescriptorSlab slab(168, 8);
    const std::size_t per_block = DescriptorSlab::kBlockBytes / 168;
    std::vector<void*> slots;
    for (std::size_t i = 0; i < per_block + 1; ++i) slots.push_back(slab.allocate());
    CHECK(slab.stats().in_use == per_block + 1);
    CHECK(slab.stats().blocks == 2);
    for (std::size_t i = 1; i < per_block; ++i) {
      CHECK(static_cast<std::byte*>(slots[i]) - static_cast<std::byte*>(slots[i - 1]) == 168);
    }
    for (void* s : slots) CHECK(reinterpret_cast<std::uintptr_t>(s) % 8 == 0);

    slab.release(slots[3]);
    slab.release(slots[7]);
    CHECK(slab.stats().in_use == per_block - 1);
    CHECK(slab.allocate() == slots[7]);  // last released, first reused
    CHECK(slab.allocate() == slots[3]);
    CHECK(slab.stats().blocks == 2);  // no new block while released slots remain
    for (void* s : slots) slab.release(s);
    CHECK(slab.stats().in_use == 0);
  }

  TEST_CASE("a slot size is rounded up to the alignment") {
    DescriptorSlab slab(10, 8);
    CHECK(slab.slot_size() == 16);
    void* a = slab.allocate();
    void* b = slab.allocate();
    CHECK(static_cast<std::byte*>(b) - static_cast<std::byte*>(a) == 16);
    slab.release(a);
    slab.release(b);
  }

  // The point of the slab: Asio's reactor takes each socket's state from it (asio_compiled.cpp), so the
  // states of many sockets sit together instead of between the connections' allocations.
  TEST_CASE("every socket an io_context opens takes its reactor state from the slab, returned with the io_context") {
    auto& slab = reactor_descriptor_slab();
    const auto before = slab.stats();
    constexpr std::size_t kSockets = 600;
    std::optional<boost::asio::io_context> io(std::in_place);
    std::vector<boost::asio::ip::tcp::socket> sockets;
    for (std::size_t i = 0; i < kSockets; ++i) {
      sockets.emplace_back(*io);
      sockets.back().open(boost::asio::ip::tcp::v4());
    }
    const auto open = slab.stats();
    CHECK(open.in_use >= before.in_use + kSockets);
    // Side by side: 600 states of 168 bytes fill two blocks, plus at most one partly used before.
    CHECK(open.blocks <= before.blocks + kSockets * slab.slot_size() / DescriptorSlab::kBlockBytes + 2);

    sockets.clear();
    CHECK(slab.stats().in_use >= before.in_use + kSockets);  // Asio keeps closed sockets' states for reuse
    io.reset();
    CHECK(slab.stats().in_use <= before.in_use);  // the reactor gave them all back
  }
}
