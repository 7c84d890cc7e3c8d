#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/net/heap_trimmer.h"

using namespace ambient;
using namespace std::chrono_literals;

TEST_SUITE("common/net/heap_trimmer") {
  TEST_CASE("should_trim: only after a fall to half the peak, by at least min_drop") {
    struct Row {
      std::uint64_t peak, open, min_drop;
      bool trim;
    };
    const Row rows[] = {
        {0, 0, 1000, false},         // nothing ever open
        {800, 0, 1000, false},       // a fall smaller than min_drop
        {2000, 1000, 1000, true},    // exactly half, exactly min_drop
        {2000, 1001, 1000, false},   // not yet half
        {20000, 9000, 1000, true},   // a storm's end
        {20000, 15000, 1000, false}, // steady load with some churn
        {1000, 0, 1000, true},
        {3000, 1600, 1000, false},   // above half although 1400 fewer
    };
    for (const auto& r : rows) {
      CAPTURE(r.peak);
      CAPTURE(r.open);
      CHECK(net::should_trim(r.peak, r.open, r.min_drop) == r.trim);
    }
  }

  TEST_CASE("the trimmer trims once per fall and once more a few periods later; the peak restarts where it trimmed") {
    boost::asio::io_context io(1);
    const std::vector<std::uint64_t> counts{0, 2000, 3000, 1400, 1400, 1000, 5000, 6000, 2000, 2000};
    std::size_t i = 0;
    auto trimmer = net::HeapTrimmer::start(io.get_executor(), [&] { return counts[std::min(i++, counts.size() - 1)]; },
                                           {.period = 5ms, .min_drop = 1000, .followup_periods = 3});
    while (i < counts.size()) io.run_for(5ms);
    // Tick 3: 3000 -> 1400 trims (peak 1400 from then); tick 5: 1000 is not half of 1400; tick 6: the
    // follow-up; tick 8: 6000 -> 2000 trims again (its follow-up would come at tick 11).
    CHECK(trimmer->trims() == 3);
  }
}
