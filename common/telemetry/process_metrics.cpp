#include "common/telemetry/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace ambient::telemetry {

namespace {

std::optional<std::uint64_t> count_open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  const int own = ::dirfd(dir);  // the directory stream's own fd is not one of ours
  std::uint64_t n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end != nullptr && *end == '\0' && fd == own) continue;
    ++n;
  }
  ::closedir(dir);
  return n;
}

std::optional<std::uint64_t> max_fds() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(rl.rlim_cur);
}

std::optional<std::uint64_t> resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return std::nullopt;
  unsigned long long size = 0;
  unsigned long long resident = 0;
  const int got = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (got != 2) return std::nullopt;
  const long page = ::sysconf(_SC_PAGESIZE);
  return static_cast<std::uint64_t>(resident) * static_cast<std::uint64_t>(page > 0 ? page : 4096);
}

double or_nan(std::optional<std::uint64_t> v) {
  return v ? static_cast<double>(*v) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

ProcessStats read_process_stats() {
  return ProcessStats{count_open_fds(), max_fds(), resident_bytes()};
}

void register_process_metrics(Registry& registry) {
  // Help texts as the Prometheus process collector's.
  registry.gauge_callback("process_open_fds", "Number of open file descriptors.", {},
                          [] { return or_nan(count_open_fds()); });
  registry.gauge_callback("process_max_fds", "Maximum number of open file descriptors.", {},
                          [] { return or_nan(max_fds()); });
  registry.gauge_callback("process_resident_memory_bytes", "Resident memory size in bytes.", {},
                          [] { return or_nan(resident_bytes()); });
}

void register_build_info(Registry& registry, std::string component, std::string tag) {
  const Label labels[] = {{"component", component}, {"tag", tag}};
  registry.gauge_callback("istio_build", "Istio component build info", labels, [] { return 1.0; });
}

}  // namespace ambient::telemetry
