#pragma once
// copy_bidirectional: the proxy's inner loop. Moves bytes both ways between two ByteStreams until
// both directions have ended, propagating half-close.
//
// Contract:
//  - The two directions run concurrently on the caller's executor (awaitable operator &&); each owns a
//    CopyBuffer (copy_buffer.h: 1 KiB growing to 256 KiB - 64) and alternates read_some on its source
//    with write_all on its destination, so at most one buffer of data per direction is in flight and
//    a slow reader slows the writer (backpressure is the destination's write_all). A ViewSource
//    (HTTP/2 stream) needs no buffer: its received bytes are written in place, then consumed, so the
//    peer's window re-opens only after the destination took them. A BlockSink (HTTP/2 stream) gets
//    the read buffer itself: reads go into shared blocks (same sizes as CopyBuffer) with headroom for
//    the frame header, and a block the sink still holds is not reused (at most two per direction).
//  - EOF from a source is forwarded as shutdown_write() on the other stream (TCP FIN <-> HTTP/2
//    END_STREAM); the other direction keeps going. The call returns ok when BOTH directions have seen
//    EOF and forwarded it. The streams are left open: the caller drops them (graceful close).
//  - The first error in either direction (read, write or shutdown_write) closes BOTH streams (abortive
//    ByteStream::close(), which must also complete the other direction's pending read/write), and
//    the call returns that error once both directions have stopped. Its context names the direction,
//    the operation and the failing stream, e.g. "copy b->a: read b: tcp read from 1.2.3.4:80: ...";
//    CopyStats::failed says which stream failed.
//  - No locks: both streams must belong to the caller's executor, and nobody else may read or write
//    them during the copy. `a`, `b` (and `stats`) must outlive the returned awaitable.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include "common/base/result.h"
#include "common/net/block.h"
#include "common/net/byte_stream.h"
#include "common/net/copy_buffer.h"

namespace ambient::net {

enum class CopySide : std::uint8_t {
  A,  // the first stream argument of copy_bidirectional
  B,  // the second stream argument
};

constexpr std::string_view to_string(CopySide side) noexcept { return side == CopySide::A ? "a" : "b"; }

struct CopyDirectionStats {
  std::uint64_t bytes = 0;      // read from the source and fully written to the destination
  std::size_t buffer_size = 0;  // this direction's buffer size now, which is also the largest it reached
  bool eof = false;             // the source ended and shutdown_write() was forwarded
};

struct CopyStats {
  CopyDirectionStats a_to_b;
  CopyDirectionStats b_to_a;
  std::optional<CopySide> failed;  // set when an error ended the copy: the stream whose operation failed
};

// A source that can lend its received bytes in place (h2::Stream::read_view): the copy writes
// straight from them and then consumes them.
template <typename S>
concept ViewSource = requires(S& s, std::size_t n) {
  { s.read_view() } -> std::same_as<boost::asio::awaitable<Result<std::span<const std::uint8_t>>>>;
  s.consume_view(n);
};

// A destination that can take a read buffer by reference (h2::Stream::write_block): the copy reads
// into shared blocks with headroom and hands them over instead of having the bytes copied again.
template <typename S>
concept BlockSink = requires(S& s, const BlockRef& b, std::span<const std::uint8_t> d) {
  { s.write_block(b, d) } -> std::same_as<boost::asio::awaitable<Result<void>>>;
  { S::kBlockHeadroom } -> std::convertible_to<std::size_t>;
};

namespace detail {

template <ByteStream From, ByteStream To, typename Abort>
boost::asio::awaitable<void> copy_one_way(From& from, To& to, CopySide from_side, CopyDirectionStats& dir,
                                          CopyStats& stats, std::optional<Error>& first_error, Abort abort) {
  const CopySide to_side = from_side == CopySide::A ? CopySide::B : CopySide::A;
  // Records the first failure and aborts both streams. Later failures are the other direction
  // noticing that abort (Cancelled, bad descriptor) and are dropped.
  const auto fail = [&](CopySide side, std::string_view op, Error e) {
    if (first_error) return;
    e.context = fmt::format("copy {}->{}: {} {}: {}", to_string(from_side), to_string(to_side), op,
                            to_string(side), e.context);
    stats.failed = side;
    first_error = std::move(e);
    abort();
  };

  // The source ended: half-close the destination (FIN <-> END_STREAM).
  const auto forward_eof = [&]() -> boost::asio::awaitable<void> {
    auto r = co_await to.shutdown_write();
    if (!r) {
      fail(to_side, "shutdown_write", std::move(r).error());
    } else {
      dir.eof = true;
    }
  };

  if constexpr (ViewSource<From>) {
    // The source lends its received bytes in place (HTTP/2 stream): no buffer of our own, no copy.
    for (;;) {
      auto v = co_await from.read_view();
      if (!v) {
        fail(from_side, "read", std::move(v).error());
        co_return;
      }
      const std::size_t n = v->size();
      if (n == 0) {
        co_await forward_eof();
        co_return;
      }
      auto w = co_await to.write_all(*v);
      from.consume_view(n);
      if (!w) {
        fail(to_side, "write", std::move(w).error());
        co_return;
      }
      dir.bytes += n;
    }
  }
  if constexpr (BlockSink<To>) {
    // Two blocks at most: the one the sink may still hold (queued for its TLS write) and the next.
    constexpr std::size_t kHeadroom = (To::kBlockHeadroom + 15) / 16 * 16;
    BlockRef block, spare;
    std::uint64_t copied = 0;
    for (;;) {
      const std::size_t want = CopyBuffer::size_for(copied);
      if (!block || block.use_count() > 1 || block->capacity < kHeadroom + want) {
        std::swap(block, spare);
        if (!block || block.use_count() > 1 || block->capacity < kHeadroom + want)
          block = std::make_shared<Block>(kHeadroom + want);
      }
      dir.buffer_size = want;
      const std::span<std::uint8_t> space(block->bytes.get() + kHeadroom, want);
      auto n = co_await from.read_some(space);
      if (!n) {
        fail(from_side, "read", std::move(n).error());
        co_return;
      }
      if (*n == 0) {
        co_await forward_eof();
        co_return;
      }
      auto w = co_await to.write_block(block, space.first(*n));
      if (!w) {
        fail(to_side, "write", std::move(w).error());
        co_return;
      }
      dir.bytes += *n;
      copied += *n;
    }
  }
  CopyBuffer buf;
  dir.buffer_size = buf.size();
  for (;;) {
    auto n = co_await from.read_some(buf.space());
    if (!n) {
      fail(from_side, "read", std::move(n).error());
      co_return;
    }
    if (*n == 0) {
      co_await forward_eof();
      co_return;
    }
    auto w = co_await to.write_all(buf.space().first(*n));
    if (!w) {
      fail(to_side, "write", std::move(w).error());
      co_return;
    }
    dir.bytes += *n;
    buf.consumed(*n);
    dir.buffer_size = buf.size();
  }
}

}  // namespace detail

// Copies until both directions end; `stats` is updated as bytes move (an idle watchdog or a metrics
// scrape on the same executor may read it meanwhile) and is complete on return, error or not.
template <ByteStream A, ByteStream B>
boost::asio::awaitable<Result<void>> copy_bidirectional(A& a, B& b, CopyStats& stats) {
  using namespace boost::asio::experimental::awaitable_operators;
  std::optional<Error> first_error;
  const auto abort = [&a, &b]() noexcept {
    a.close();
    b.close();
  };
  // Directions report failure through first_error, never by exception, so && waits for both.
  co_await (detail::copy_one_way(a, b, CopySide::A, stats.a_to_b, stats, first_error, abort) &&
            detail::copy_one_way(b, a, CopySide::B, stats.b_to_a, stats, first_error, abort));
  if (first_error) co_return std::move(*first_error);
  co_return ok();
}

// Same, returning the stats on success (byte counts of a failed copy are lost; use the overload
// above when they are needed for the connection's record).
template <ByteStream A, ByteStream B>
boost::asio::awaitable<Result<CopyStats>> copy_bidirectional(A& a, B& b) {
  CopyStats stats;
  auto r = co_await copy_bidirectional(a, b, stats);
  if (!r) co_return std::move(r).error();
  co_return stats;
}

}  // namespace ambient::net
