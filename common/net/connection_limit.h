#pragma once
// ConnectionLimit: at most `max` accepted connections open at once in a process (ztunnel's MAX_CONNECTIONS,
// the waypoint's WAYPOINT_MAX_CONNECTIONS). Every worker's accept loop asks try_admit() and the connection's
// coroutine calls release() when it ends. Atomics, no lock: workers admitting at the same instant may pass
// the cap by up to (workers - 1) connections.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include <spdlog/spdlog.h>

#include "common/net/tcp_stream.h"

namespace ambient::net {

class ConnectionLimit {
 public:
  explicit ConnectionLimit(std::uint64_t max = 0) : max_(max) {}

  // 0 (unlimited) until set; set before the workers start.
  void set_max(std::uint64_t max) noexcept { max_ = max; }

  // True: serve it, then release(). False: over the limit (counted in refused()); the caller resets it.
  bool try_admit() noexcept {
    if (max_ != 0 && open_.load(std::memory_order_relaxed) >= max_) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    open_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  void release() noexcept { open_.fetch_sub(1, std::memory_order_relaxed); }

  // The accept loop's step: true when `connection` may be served (then release() when it ends); false when
  // the cap is reached: the connection is reset (abortive close, so the client fails at once) and a warning
  // naming `listener` and the `setting` that sets the cap is logged at most once a second per `last_warning`.
  bool admit_or_reset(TcpStream& connection, std::string_view listener, std::string_view setting,
                      std::chrono::steady_clock::time_point& last_warning) {
    if (try_admit()) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_warning >= std::chrono::seconds(1)) {
      last_warning = now;
      spdlog::warn("{} listener: {} connections open, {} reached: resetting new connections ({} so far)", listener,
                   max(), setting, refused());
    }
    connection.close();
    return false;
  }

  std::uint64_t max() const noexcept { return max_; }
  std::uint64_t open() const noexcept { return open_.load(std::memory_order_relaxed); }
  std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

  // The default cap: half the open-file limit (at least 64). A proxied connection holds about two
  // descriptors (downstream and upstream), so accept() and upstream sockets stay clear of EMFILE, with the
  // other half left for pools, control connections and logs.
  static std::uint64_t half_open_file_limit() noexcept {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return 1'000'000;
    return std::max<std::uint64_t>(64, lim.rlim_cur / 2);
  }

 private:
  std::uint64_t max_;
  std::atomic<std::uint64_t> open_{0};
  std::atomic<std::uint64_t> refused_{0};
};

}  // namespace ambient::net
