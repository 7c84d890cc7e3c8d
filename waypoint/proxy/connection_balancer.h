#pragma once
// ConnectionBalancer: exact balancing of accepted HBONE connections over the workers (Istio's waypoint sets
// Envoy's ExactBalance on connect_terminate for the same reason). A waypoint takes few, long-lived HBONE
// connections, each carrying up to 100 multiplexed tunnels: SO_REUSEPORT's hash can put two of them on one
// worker and leave another idle. One worker accepts; each connection goes to the worker holding the fewest
// live ones, and stays there (a connection never leaves its worker).
//
// Threads: pick() and the counters are used from every worker: the counts are relaxed atomics (a stale
// read only makes the balance slightly less exact).
#include <atomic>
#include <cstddef>
#include <memory>
#include <vector>

namespace ambient::waypoint {

class ConnectionBalancer {
 public:
  explicit ConnectionBalancer(std::size_t workers) : counts_(workers) {}
  // The worker with the fewest live connections (the lowest index on ties); counts the new one there.
  std::size_t pick() {
    std::size_t best = 0;
    for (std::size_t i = 1; i < counts_.size(); ++i)
      if (counts_[i].load(std::memory_order_relaxed) < counts_[best].load(std::memory_order_relaxed)) best = i;
    counts_[best].fetch_add(1, std::memory_order_relaxed);
    return best;
  }
  void add(std::size_t worker) { counts_[worker].fetch_add(1, std::memory_order_relaxed); }
  void done(std::size_t worker) { counts_[worker].fetch_sub(1, std::memory_order_relaxed); }
  std::size_t live(std::size_t worker) const { return counts_[worker].load(std::memory_order_relaxed); }
  std::size_t workers() const { return counts_.size(); }

 private:
  std::vector<std::atomic<std::size_t>> counts_;
};

}  // namespace ambient::waypoint
