#pragma once
// Notify: a wake-up for one waiting coroutine on the same io_context (no locks, no threads).
// Waiters must re-check their condition in a loop: `while (!ready) co_await n.wait();`. Because the
// check and the wait happen without a suspension in between, a notify() can never be lost.
#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace ambient::h2 {

class Notify {
 public:
  explicit Notify(const boost::asio::any_io_executor& ex) : timer_(ex, boost::asio::steady_timer::time_point::max()) {}

  // Wakes the current waiter, if any. Safe inside nghttp2 callbacks: it only schedules a completion.
  void notify() noexcept { timer_.cancel(); }

  boost::asio::awaitable<void> wait() {
    co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  }

  // Returns false when the deadline passed before a notify().
  boost::asio::awaitable<bool> wait_until(std::chrono::steady_clock::time_point deadline) {
    using namespace boost::asio::experimental::awaitable_operators;
    boost::asio::steady_timer d(timer_.get_executor(), deadline);
    auto r = co_await (timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable)) ||
                       d.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable)));
    co_return r.index() == 0;
  }

 private:
  boost::asio::steady_timer timer_;
};

}  // namespace ambient::h2
