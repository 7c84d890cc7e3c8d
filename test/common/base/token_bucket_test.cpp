#include <doctest/doctest.h>

#include "common/base/token_bucket.h"

using namespace ambient;
using namespace std::chrono_literals;

TEST_SUITE("common/base/token_bucket") {
  TEST_CASE("starts full, refills at the rate, never above the burst") {
    const auto t0 = std::chrono::steady_clock::now();
    TokenBucket b(3, 10, t0);
    CHECK(b.take(t0));
    CHECK(b.take(t0));
    CHECK(b.take(t0));
    CHECK_FALSE(b.take(t0));
    CHECK_FALSE(b.take(t0 + 50ms));  // half a token
    CHECK(b.take(t0 + 100ms));       // one token at 10/s
    CHECK_FALSE(b.take(t0 + 100ms));
    CHECK(b.tokens() < 1.0);
    // An hour idle refills to the burst, not to 36,000.
    CHECK(b.take(t0 + 1h));
    CHECK(b.take(t0 + 1h));
    CHECK(b.take(t0 + 1h));
    CHECK_FALSE(b.take(t0 + 1h));
  }

  TEST_CASE("time going backwards (an older timestamp) adds nothing") {
    const auto t0 = std::chrono::steady_clock::now();
    TokenBucket b(1, 1, t0 + 10s);
    CHECK(b.take(t0 + 10s));
    CHECK_FALSE(b.take(t0));
    CHECK_FALSE(b.take(t0 + 10s));
  }

  TEST_CASE("a zero rate never refills") {
    const auto t0 = std::chrono::steady_clock::now();
    TokenBucket b(2, 0, t0);
    CHECK(b.take(t0));
    CHECK(b.take(t0));
    CHECK_FALSE(b.take(t0 + 24h));
  }
}
