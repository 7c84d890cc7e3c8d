#include <doctest/doctest.h>

#include "common/net/copy_buffer.h"

using namespace ambient;
using net::CopyBuffer;

TEST_SUITE("common/net/copy_buffer") {
  TEST_CASE("size policy: 1 KiB, then 16 KiB - 64 from 128 KiB, then 256 KiB - 64 from 10 MiB") {
    struct Row { std::uint64_t copied; std::size_t want; };
    for (const Row row : {Row{0, 1024}, Row{128 * 1024 - 1, 1024}, Row{128 * 1024, 16320},
                          Row{10 * 1024 * 1024 - 1, 16320}, Row{10 * 1024 * 1024, 262080},
                          Row{std::uint64_t{1} << 40, 262080}}) {
      CAPTURE(row.copied);
      CHECK(CopyBuffer::size_for(row.copied) == row.want);
    }
  }

  TEST_CASE("grows only when the copied total crosses a threshold, and the span follows") {
    CopyBuffer buf;
    CHECK(buf.size() == CopyBuffer::kInitialSize);
    CHECK(buf.space().size() == CopyBuffer::kInitialSize);
    std::uint64_t total = 0;
    while (total + buf.size() < CopyBuffer::kLargeThreshold) {
      buf.space()[buf.size() - 1] = 0xab;  // the whole span is writable
      buf.consumed(buf.size());
      total += CopyBuffer::kInitialSize;
      REQUIRE(buf.size() == CopyBuffer::kInitialSize);
    }
    buf.consumed(CopyBuffer::kLargeThreshold - total);
    CHECK(buf.copied() == CopyBuffer::kLargeThreshold);
    CHECK(buf.size() == CopyBuffer::kLargeSize);
    CHECK(buf.space().size() == CopyBuffer::kLargeSize);
    buf.consumed(CopyBuffer::kJumboThreshold - CopyBuffer::kLargeThreshold);
    CHECK(buf.size() == CopyBuffer::kJumboSize);
    buf.space()[CopyBuffer::kJumboSize - 1] = 0xcd;
    buf.consumed(1);
    CHECK(buf.size() == CopyBuffer::kJumboSize);  // never beyond the jumbo size
  }
}
