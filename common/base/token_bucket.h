#pragma once
// TokenBucket: a rate limit with a burst. Starts full (`burst` tokens), refills `per_second` tokens per
// second up to `burst`; take() spends one token or reports that none is left. Time is passed in, so the
// decision is a pure function of the calls (table-testable); one instance belongs to one connection.
#include <algorithm>
#include <chrono>
#include <cstdint>

namespace ambient {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  TokenBucket(std::uint32_t burst, std::uint32_t per_second, Clock::time_point now) noexcept
      : burst_(burst), per_second_(per_second), tokens_(burst), last_(now) {}

  // Spends one token; false when the bucket is empty (the caller is over its rate).
  bool take(Clock::time_point now) noexcept {
    if (now > last_) {
      const double elapsed = std::chrono::duration<double>(now - last_).count();
      tokens_ = std::min<double>(burst_, tokens_ + elapsed * per_second_);
      last_ = now;
    }
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

  double tokens() const noexcept { return tokens_; }

 private:
  std::uint32_t burst_;
  std::uint32_t per_second_;
  double tokens_;
  Clock::time_point last_;
};

}  // namespace ambient
