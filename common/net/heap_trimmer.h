#pragma once
// HeapTrimmer: gives the heap memory a burst of connections freed back to the kernel.
//
// glibc keeps freed chunks in its arenas (one per worker thread), so after a storm of connections closes the
// process would stay at the storm's peak RSS (bench/hardening: 19,500 connections left ~310 MiB resident with
// every connection gone). malloc_trim(0) returns those free pages. The trimmer runs on the control executor
// every `period`, reads a connection count (the apps pass their tunnels in flight) and trims only when it has
// fallen to half of its peak since the last trim, by at least `min_drop` (should_trim): steady load never pays for it,
// and a trim (a walk of the free lists under each arena's lock, milliseconds) happens once per fall, plus
// once more `followup_periods` later for what is freed after the connections (draining HBONE sessions,
// pooled connections released soon after their last tunnel).
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace ambient::net {

// Pure: trim when `open` is at most half of `peak` and at least `min_drop` below it.
constexpr bool should_trim(std::uint64_t peak, std::uint64_t open, std::uint64_t min_drop) noexcept {
  return open <= peak / 2 && peak - open >= min_drop;
}

class HeapTrimmer : public std::enable_shared_from_this<HeapTrimmer> {
 public:
  struct Options {
    std::chrono::milliseconds period{5'000};
    std::uint64_t min_drop = 1'000;
    unsigned followup_periods = 3;  // 15 s at the default period: sessions that drain after the fall
  };

  // Starts the periodic check on `ex`; it stops when the executor's io_context stops.
  static std::shared_ptr<HeapTrimmer> start(boost::asio::any_io_executor ex, std::function<std::uint64_t()> open_connections,
                                            Options options) {
    auto t = std::shared_ptr<HeapTrimmer>(new HeapTrimmer(ex, std::move(open_connections), options));
    t->arm();
    return t;
  }

  std::uint64_t trims() const noexcept { return trims_; }

 private:
  HeapTrimmer(boost::asio::any_io_executor ex, std::function<std::uint64_t()> open, Options options)
      : timer_(ex), open_(std::move(open)), options_(options) {}

  void arm() {
    timer_.expires_after(options_.period);
    timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      self->check();
      self->arm();
    });
  }

  void check() {
    const std::uint64_t open = open_();
    peak_ = std::max(peak_, open);
    if (should_trim(peak_, open, options_.min_drop)) {
      trim();
      peak_ = open;
      followup_in_ = options_.followup_periods;
      return;
    }
    if (followup_in_ > 0 && --followup_in_ == 0) trim();
  }

  void trim() {
    malloc_trim(0);
    ++trims_;
  }

  boost::asio::steady_timer timer_;
  std::function<std::uint64_t()> open_;
  Options options_;
  std::uint64_t peak_ = 0;
  std::uint64_t trims_ = 0;
  unsigned followup_in_ = 0;  // periods until the follow-up trim (0: none pending)
};

}  // namespace ambient::net
