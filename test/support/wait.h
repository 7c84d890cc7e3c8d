#pragma once
// Polls `pred` every 20 ms until it holds or `timeout` passes (blocking: for the test thread).
#include <chrono>
#include <functional>
#include <thread>

namespace ambient::test {

inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace ambient::test
