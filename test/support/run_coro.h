#pragma once
// Runs a coroutine to completion on an io_context (single thread) and returns its value. The
// io_context stops when the coroutine completes: background coroutines (servers) are paused, not
// finished, and continue at the next run_coro on the same io_context.
// Exceptions escaping the coroutine are rethrown so doctest reports them. The value type need not be
// default-constructible (Result<T> is not).
#include <exception>
#include <optional>
#include <type_traits>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

namespace ambient::test {

template <typename T>
T run_coro(boost::asio::io_context& io, boost::asio::awaitable<T> aw) {
  std::exception_ptr error;
  if constexpr (std::is_void_v<T>) {
    boost::asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e) { error = e; io.stop(); });
    io.run();
    io.restart();
    if (error) std::rethrow_exception(error);
  } else {
    // co_spawn of awaitable<T> needs a default-constructible T, so store from a void coroutine.
    std::optional<T> out;
    auto store = [](boost::asio::awaitable<T> inner, std::optional<T>& dst) -> boost::asio::awaitable<void> {
      dst.emplace(co_await std::move(inner));
    };
    boost::asio::co_spawn(io, store(std::move(aw), out), [&](std::exception_ptr e) {
      error = e;
      io.stop();
    });
    io.run();
    io.restart();
    if (error) std::rethrow_exception(error);
    return std::move(*out);
  }
}

}  // namespace ambient::test
