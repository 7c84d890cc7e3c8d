#pragma once
// Process and build gauges, evaluated at scrape time (Registry callback gauges):
//   process_open_fds                 entries of /proc/self/fd
//   process_max_fds                  soft RLIMIT_NOFILE
//   process_resident_memory_bytes    resident pages (/proc/self/statm) * page size
//   istio_build{component, tag}      1 (Istio's build-info gauge)
// ztunnel exports only the two fd gauges; RSS is ours (bench/ tracks memory per connection).
#include <cstdint>
#include <optional>
#include <string>

#include "common/telemetry/metrics.h"

namespace ambient::telemetry {

struct ProcessStats {
  std::optional<std::uint64_t> open_fds;        // nullopt when /proc is unavailable
  std::optional<std::uint64_t> max_fds;
  std::optional<std::uint64_t> resident_bytes;
};

// Reads the stats of the calling process. A few syscalls; meant for the scrape, not the data path.
ProcessStats read_process_stats();

// Registers the three process gauges. A stat that cannot be read renders NaN.
void register_process_metrics(Registry& registry);

// istio_build{component="<component>",tag="<tag>"} 1
void register_build_info(Registry& registry, std::string component, std::string tag);

}  // namespace ambient::telemetry
