#pragma once
// ResponseDeadline: the route timeout's bound on the rest of a response once its head has been forwarded.
// Gateway API's `timeouts.request` (Envoy's route timeout) covers the whole exchange; after the response head has
// gone to the client a 504 can no longer be sent, so on expiry the exchange is cut: `on_expiry` closes the
// streams (their pending reads and writes then fail) and expired() tells the exchange to record flag UT.
//
// Single-threaded (one worker's io_context). The timer handler holds only shared state, so it is harmless if it
// runs after the guard is gone; disarm() (or destruction) guarantees `on_expiry` is not called afterwards.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace ambient::waypoint {

class ResponseDeadline {
 public:
  // No deadline (nullopt): never expires, arms no timer.
  ResponseDeadline(boost::asio::io_context& io, std::optional<std::chrono::steady_clock::time_point> at, std::function<void()> on_expiry)
      : timer_(io) {
    if (!at) return;
    state_ = std::make_shared<State>();
    state_->on_expiry = std::move(on_expiry);
    timer_.expires_at(*at);
    timer_.async_wait([s = state_](boost::system::error_code ec) {
      if (ec || !s->armed) return;
      s->armed = false;
      s->expired = true;
      if (s->on_expiry) s->on_expiry();
    });
  }
  ~ResponseDeadline() { disarm(); }
  ResponseDeadline(const ResponseDeadline&) = delete;
  ResponseDeadline& operator=(const ResponseDeadline&) = delete;

  void disarm() noexcept {
    if (!state_) return;
    state_->armed = false;
    state_->on_expiry = nullptr;
    timer_.cancel();
  }
  bool expired() const noexcept { return state_ && state_->expired; }

 private:
  struct State {
    bool armed = true;
    bool expired = false;
    std::function<void()> on_expiry;
  };
  boost::asio::steady_timer timer_;
  std::shared_ptr<State> state_;  // null without a deadline
};

}  // namespace ambient::waypoint
