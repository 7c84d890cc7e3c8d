#include <doctest/doctest.h>

#include <chrono>
#include <vector>

#include "cni/kube/backoff.h"

using namespace ambient::cni::kube;
using std::chrono::milliseconds;

TEST_SUITE("cni/kube/backoff") {
  TEST_CASE("200 ms doubling to 30 s; jitter takes up to half off; reset starts again") {
    struct Row {
      const char* name;
      double u;  // the random draw
      std::vector<long> delays;
    };
    const std::vector<Row> rows = {
        {"no jitter drawn", 0.0, {200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000}},
        {"largest jitter", 0.999999, {100, 200, 400, 800, 1600, 3200, 6400, 12800, 15000, 15000}},
        {"half", 0.5, {150, 300, 600, 1200, 2400, 4800, 9600, 19200, 22500, 22500}},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      Backoff backoff(BackoffPolicy{}, [u = row.u] { return u; });
      std::vector<long> got;
      for (std::size_t i = 0; i < row.delays.size(); ++i) got.push_back(static_cast<long>(backoff.next().count()));
      CHECK(got == row.delays);
      CHECK(backoff.failures() == row.delays.size());
      backoff.reset();
      CHECK(backoff.next().count() == row.delays.front());
    }
  }

  TEST_CASE("many failures never overflow; the default random source stays within (nominal/2, nominal]") {
    Backoff backoff(BackoffPolicy{milliseconds(10), milliseconds(80), 0.5});
    for (int i = 0; i < 10'000; ++i) {
      const auto d = backoff.next();
      CHECK(d.count() >= 5);
      CHECK(d.count() <= 80);
    }
  }
}
