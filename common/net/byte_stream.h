#pragma once
// ByteStream: the one shape every byte pipe in the tree has (TCP socket, TLS stream, HTTP/2 CONNECT
// stream), so copy loops and tunnels are written once.
//
// Contract (all members are coroutines on the stream's own io_context; one reader and one writer may
// run concurrently, never two readers or two writers):
//   read_some(buf)   -> Result<size_t>  0 bytes with success means EOF (peer half-closed its side).
//   write_all(buf)   -> Result<void>    returns when every byte is accepted (by the kernel or the
//                                       stream's bounded buffer); this is where backpressure waits.
//   shutdown_write() -> Result<void>    half-close: FIN (TCP), close_notify-free FIN (TLS), END_STREAM (h2).
//   close()                             abortive close of both directions; idempotent, never blocks.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include <boost/asio/awaitable.hpp>

#include "common/base/result.h"

namespace ambient::net {

template <typename S>
concept ByteStream = requires(S& s, std::span<std::uint8_t> rb, std::span<const std::uint8_t> wb) {
  { s.read_some(rb) } -> std::same_as<boost::asio::awaitable<Result<std::size_t>>>;
  { s.write_all(wb) } -> std::same_as<boost::asio::awaitable<Result<void>>>;
  { s.shutdown_write() } -> std::same_as<boost::asio::awaitable<Result<void>>>;
  { s.close() };
};

}  // namespace ambient::net
