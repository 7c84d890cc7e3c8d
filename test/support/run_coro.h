#pragma once
// Runs a coroutine to completion on a fresh io_context (single thread) and returns its value.
// Exceptions escaping the coroutine are rethrown so doctest reports them.
#include <chrono>
#include <future>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace ambient::test {

template <typename Awaitable>
auto run_coro(boost::asio::io_context& io, Awaitable&& aw) {
  auto fut = boost::asio::co_spawn(io, std::forward<Awaitable>(aw), boost::asio::use_future);
  io.run();
  io.restart();
  return fut.get();
}

// Same, on a new io_context. `factory` receives the io_context and returns the awaitable.
template <typename Factory>
auto run_coro(Factory&& factory) {
  boost::asio::io_context io(1);
  return run_coro(io, factory(io));
}

}  // namespace ambient::test
