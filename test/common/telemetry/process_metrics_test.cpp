#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/telemetry/process_metrics.h"

using namespace ambient::telemetry;

TEST_SUITE("common/telemetry/process_metrics") {
  TEST_CASE("open fds follow open/close; max fds is the soft limit; RSS grows with touched memory") {
    const ProcessStats before = read_process_stats();
    REQUIRE(before.open_fds.has_value());
    REQUIRE(before.max_fds.has_value());
    REQUIRE(before.resident_bytes.has_value());

    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    CHECK(*read_process_stats().open_fds == *before.open_fds + 1);
    ::close(fd);
    CHECK(*read_process_stats().open_fds == *before.open_fds);

    rlimit rl{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
    CHECK(*before.max_fds == static_cast<std::uint64_t>(rl.rlim_cur));

    std::vector<char> block(32 * 1024 * 1024);
    for (std::size_t i = 0; i < block.size(); i += 4096) block[i] = static_cast<char>(i);
    const auto after = *read_process_stats().resident_bytes;
    CHECK(after >= *before.resident_bytes + 16 * 1024 * 1024);
    CHECK(block[4096] == static_cast<char>(4096));
  }

  TEST_CASE("registered as gauges: process metrics and istio_build") {
    Registry reg;
    register_process_metrics(reg);
    register_build_info(reg, "ztunnel", "1.24.0-ambient");
    const std::string out = reg.render();
    CHECK(out.find("# HELP istio_build Istio component build info\n# TYPE istio_build gauge\n"
                   "istio_build{component=\"ztunnel\",tag=\"1.24.0-ambient\"} 1\n") != std::string::npos);
    CHECK(out.find("# TYPE process_open_fds gauge\nprocess_open_fds ") != std::string::npos);
    CHECK(out.find("# TYPE process_max_fds gauge\nprocess_max_fds ") != std::string::npos);
    CHECK(out.find("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ") != std::string::npos);
    // The value is the live one, rendered as an integer.
    const auto pos = out.find("\nprocess_max_fds ") + 17;
    CHECK(out.substr(pos, out.find('\n', pos) - pos) == std::to_string(*read_process_stats().max_fds));
  }
}
