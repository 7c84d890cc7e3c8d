#include "cni/kube/backoff.h"

#include <algorithm>
#include <memory>
#include <random>

namespace ambient::cni::kube {

Backoff::Backoff(BackoffPolicy policy, std::function<double()> unit_random)
    : policy_(policy), unit_random_(std::move(unit_random)) {
  policy_.jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  policy_.initial = std::max(policy_.initial, std::chrono::milliseconds(1));
  policy_.max = std::max(policy_.max, policy_.initial);
  if (!unit_random_) {
    auto engine = std::make_shared<std::minstd_rand>(std::random_device{}());
    unit_random_ = [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
  }
}

std::chrono::milliseconds Backoff::next() {
  // Doubling stops once past max, so the shift never overflows.
  std::chrono::milliseconds nominal = policy_.initial;
  for (std::uint32_t i = 0; i < failures_ && nominal < policy_.max; ++i) nominal *= 2;
  nominal = std::min(nominal, policy_.max);
  if (failures_ < UINT32_MAX) ++failures_;
  const double u = std::clamp(unit_random_(), 0.0, 1.0);
  const auto jittered = static_cast<std::int64_t>(static_cast<double>(nominal.count()) * (1.0 - policy_.jitter * u));
  return std::chrono::milliseconds(std::max<std::int64_t>(jittered, 1));
}

}  // namespace ambient::cni::kube
