#pragma once
// Exponential backoff with jitter for reconnecting to the API server: the n-th consecutive failure waits
//   nominal(n) = min(initial * 2^(n-1), max)        (200 ms, 400 ms, ... 30 s with the defaults)
//   delay(n)   = nominal(n) * (1 - jitter * u),  u uniform in [0, 1)
// so with jitter 0.5 the delay lies in (nominal/2, nominal]: agents of many nodes that lost the API server at
// the same moment do not come back in lockstep. reset() after a healthy watch starts again at `initial`.
// Pure: the random source is injected (tests pass a constant).
#include <chrono>
#include <cstdint>
#include <functional>

namespace ambient::cni::kube {

struct BackoffPolicy {
  std::chrono::milliseconds initial{200};
  std::chrono::milliseconds max{30'000};
  double jitter = 0.5;  // in [0, 1]: the fraction of the nominal delay that is random
};

class Backoff {
 public:
  // `unit_random` returns values in [0, 1); empty = a private std::minstd_rand seeded from random_device.
  explicit Backoff(BackoffPolicy policy = {}, std::function<double()> unit_random = {});

  // The delay before the next attempt; counts one more failure.
  std::chrono::milliseconds next();
  void reset() noexcept { failures_ = 0; }
  std::uint32_t failures() const noexcept { return failures_; }

 private:
  BackoffPolicy policy_;
  std::function<double()> unit_random_;
  std::uint32_t failures_ = 0;
};

}  // namespace ambient::cni::kube
