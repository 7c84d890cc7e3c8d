#pragma once
// Drain: the graceful shutdown every proxy process here runs after SIGTERM (ztunnel's drain, Envoy's
// drain-then-close): stop accepting first (the caller, before start()), let live connections finish until
// the deadline (polled every 50 ms), close the rest, give the workers 100 ms to flush their last frames and log,
// then finish. Control thread only.
#include <chrono>
#include <cstdint>
#include <functional>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace ambient::admin {

class Drain {
 public:
  struct Hooks {
    std::function<std::uint64_t()> live;       // connections (or tunnels) still open, all workers
    std::function<void(std::uint64_t)> close;  // the deadline passed with this many live: close them all
    std::function<void()> done;                // stop the workers and the control loop
  };
  Drain(boost::asio::any_io_executor control, std::chrono::milliseconds deadline, Hooks hooks)
      : timer_(std::move(control)), deadline_(deadline), hooks_(std::move(hooks)) {}
  void start() {
    until_ = std::chrono::steady_clock::now() + deadline_;
    step();
  }

 private:
  void step() {
    const auto live = hooks_.live();
    if (live == 0 || std::chrono::steady_clock::now() >= until_) {
      if (live > 0) hooks_.close(live);
      timer_.expires_after(std::chrono::milliseconds(100));
      timer_.async_wait([this](boost::system::error_code) { hooks_.done(); });
      return;
    }
    timer_.expires_after(std::chrono::milliseconds(50));
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) step();
    });
  }

  boost::asio::steady_timer timer_;
  std::chrono::milliseconds deadline_;
  std::chrono::steady_clock::time_point until_{};
  Hooks hooks_;
};

}  // namespace ambient::admin
