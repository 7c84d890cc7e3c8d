// Zero-copy data path of the HTTP/2 layer: RecvQueue (received DATA lent in place), the per-thread
// block cache, Stream::read_view / write_block, and copy_bidirectional using them through a real
// session on loopback.
#include <doctest/doctest.h>

#include <cstring>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/h2/recv_queue.h"
#include "common/net/block.h"
#include "common/net/copy.h"
#include "test/common/h2/h2_fixture.h"
#include "test/support/run_coro.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

net::BlockRef filled_block(std::size_t cap, std::uint32_t seed) {
  auto b = std::make_shared<net::Block>(cap);
  auto p = pattern(cap, seed);
  std::memcpy(b->bytes.get(), p.data(), cap);
  return b;
}

std::vector<std::uint8_t> drain(h2::RecvQueue& q) {
  std::vector<std::uint8_t> out(q.size());
  CHECK(q.copy_out(out) == out.size());
  return out;
}

// TCP echo backend: every byte back, FIN after the client's FIN.
struct TcpEcho {
  asio::ip::tcp::acceptor acceptor;
  explicit TcpEcho(asio::io_context& io)
      : acceptor(*net::listen(io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0})) {
    asio::co_spawn(io, accept_loop(), asio::detached);
  }
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto c = co_await net::accept(acceptor);
      if (!c) co_return;
      asio::co_spawn(acceptor.get_executor(), [s = std::make_shared<net::TcpStream>(std::move(*c))]() -> asio::awaitable<void> {
            std::vector<std::uint8_t> buf(64 << 10);
            for (;;) {
              auto n = co_await s->read_some(buf);
              if (!n || *n == 0) break;
              if (!co_await s->write_all(std::span<const std::uint8_t>(buf.data(), *n))) co_return;
            }
            (void)co_await s->shutdown_write();
          }, asio::detached);
    }
  }
};

}  // namespace

TEST_SUITE("common/h2/recv_queue") {
  TEST_CASE("small pieces are copied and coalesce; large pieces of a lent block are shared in place") {
    struct Row {
      const char* name;
      std::size_t offset, len;  // a piece of a 64 KiB source block
      bool lend;                // the caller offers the block
      bool want_shared;
    };
    const Row rows[] = {
        {"4 KiB piece of a lent block: shared", 100, 4096, true, true},
        {"48 KiB piece of a lent block: shared", 0, 48 << 10, true, true},
        {"4 KiB - 1 of a lent block: copied", 0, 4095, true, false},
        {"large piece, block not offered: copied", 0, 48 << 10, false, false},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      auto src = filled_block(64 << 10, 7);
      h2::RecvQueue q;
      const std::uint8_t* at = src->bytes.get() + row.offset;
      CHECK(q.append(at, row.len, row.lend ? &src : nullptr) == row.want_shared);
      CHECK(q.size() == row.len);
      CHECK(q.shared_pieces() == (row.want_shared ? 1u : 0u));
      CHECK((q.front().data() == at) == row.want_shared);
      CHECK(src.use_count() == (row.want_shared ? 2 : 1));
      std::vector<std::uint8_t> want(at, at + row.len);
      CHECK((drain(q) == want));
      CHECK(q.empty());
      CHECK(src.use_count() == 1);  // an empty queue holds no block
    }
  }

  TEST_CASE("private blocks grow with the backlog and shrink back when the queue drains") {
    h2::RecvQueue q;
    auto small = pattern(200, 5);
    // A keep-alive stream of small messages, each read before the next arrives: 1 KiB blocks only.
    for (int i = 0; i < 20; ++i) {
      q.append(small.data(), small.size());
      CHECK(q.next_private_capacity() <= 2 * h2::RecvQueue::kMinPrivate);
      CHECK(drain(q) == small);
    }
    CHECK(q.next_private_capacity() == h2::RecvQueue::kMinPrivate);
    // A backlog of unread copied pieces: blocks double up to the cap.
    auto piece = pattern(3000, 6);
    for (int i = 0; i < 100; ++i) q.append(piece.data(), piece.size());
    CHECK(q.next_private_capacity() == h2::RecvQueue::kMaxPrivate);
    CHECK(q.size() == 300000);
    (void)drain(q);
    CHECK(q.next_private_capacity() == h2::RecvQueue::kMinPrivate);
  }

  TEST_CASE("a drained queue's small block is recycled: the next small message allocates none") {
    auto small = pattern(300, 8);
    h2::RecvQueue q;
    q.append(small.data(), small.size());
    const std::uint8_t* first = q.front().data();
    CHECK(drain(q) == small);
    q.append(small.data(), small.size());
    CHECK(q.front().data() == first);  // the same 1 KiB block, back from the per-thread list
    CHECK(drain(q) == small);
    {
      h2::RecvQueue other;  // another stream on this thread takes it after this queue is gone
      other.append(small.data(), small.size());
      CHECK(other.front().data() == first);
    }
    q.append(small.data(), small.size());
    CHECK(q.front().data() == first);
  }

  TEST_CASE("a piece outside the offered block is copied, never shared") {
    auto src = filled_block(64 << 10, 1);
    auto other = filled_block(64 << 10, 2);
    h2::RecvQueue q;
    CHECK_FALSE(q.append(other->bytes.get(), 32 << 10, &src));
    CHECK(q.front().data() != other->bytes.get());
    CHECK(src.use_count() == 1);
  }

  TEST_CASE("front() stays put while more is queued; pops cross pieces; bytes come out in order") {
    auto src = filled_block(64 << 10, 3);
    h2::RecvQueue q;
    std::vector<std::uint8_t> want;
    auto small = pattern(700, 9);
    q.append(small.data(), small.size());
    want.insert(want.end(), small.begin(), small.end());
    const auto first = q.front();
    const std::vector<std::uint8_t> first_bytes(first.begin(), first.end());
    for (int i = 0; i < 300; ++i) {  // ~600 KiB of mixed copied and shared pieces behind it
      auto p = pattern(1000 + i, 100 + i);
      q.append(p.data(), p.size());
      want.insert(want.end(), p.begin(), p.end());
      if (i % 50 == 0) {
        q.append(src->bytes.get(), 16 << 10, &src);
        want.insert(want.end(), src->bytes.get(), src->bytes.get() + (16 << 10));
      }
    }
    CHECK(q.front().data() == first.data());
    CHECK(q.front().size() > first_bytes.size());  // later bytes were appended to the same block
    CHECK(std::memcmp(q.front().data(), first_bytes.data(), first_bytes.size()) == 0);
    CHECK(q.shared_pieces() == 6);
    CHECK(q.size() == want.size());
    // Pop an odd amount across several pieces, then read the rest in odd chunks.
    q.pop(5000);
    std::vector<std::uint8_t> got(want.begin(), want.begin() + 5000);
    std::vector<std::uint8_t> buf(3333);
    while (!q.empty()) {
      const std::size_t n = q.copy_out(buf);
      got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
    CHECK((got == want));
    CHECK(src.use_count() == 1);
  }
}

TEST_SUITE("common/net/block") {
  TEST_CASE("blocks of 16 KiB and more are recycled per thread, within the cache bound") {
    const std::uint8_t* first = nullptr;
    {
      net::Block b(64 << 10);
      first = b.bytes.get();
    }
    {
      net::Block again(64 << 10);
      CHECK(again.bytes.get() == first);  // the same buffer: no fresh pages to fault in
    }
    {
      std::vector<std::unique_ptr<net::Block>> many;
      for (int i = 0; i < 100; ++i) many.push_back(std::make_unique<net::Block>(64 << 10));
    }
    CHECK(net::block_pool::cached_bytes() <= net::block_pool::kPoolBytes);
    CHECK(net::block_pool::cached_bytes() >= (1u << 20));
    const std::size_t before = net::block_pool::cached_bytes();
    { net::Block small(1024); }
    CHECK(net::block_pool::cached_bytes() == before);  // small blocks are not cached
  }
}

TEST_SUITE("common/h2/zero_copy") {
  TEST_CASE("copy_bidirectional between TCP and an HTTP/2 stream moves 64 MiB both ways in place") {
    asio::io_context io(1);
    TcpEcho backend(io);
    std::shared_ptr<h2::Session> server_session;
    Result<void> server_copy = ok();
    auto relay = [&](std::shared_ptr<h2::Stream> s) -> asio::awaitable<void> {
      REQUIRE(s->respond(200));
      auto tcp = co_await net::connect({asio::ip::make_address("127.0.0.1"), backend.port()}, 5s);
      REQUIRE(tcp);
      net::CopyStats stats;
      server_copy = co_await net::copy_bidirectional(*s, *tcp, stats);
      co_await s->finish();
    };
    H2Server server(io, quiet(), relay);
    const auto data = pattern(64 << 20, 5);
    run_coro(io, [&]() -> asio::awaitable<void> {
      using namespace asio::experimental::awaitable_operators;
      auto c = co_await connect_client(server.port(), quiet());
      REQUIRE(c);
      auto st = co_await (*c)->connect("10.0.0.1:8080", {}, 5s);
      REQUIRE(st);
      h2::Stream& s = **st;
      // Writer: write_block from blocks with headroom; reader: read_view/consume_view.
      std::vector<std::uint8_t> got;
      got.reserve(data.size());
      Result<void> wr = ok(), rd = ok();
      auto writer = [&]() -> asio::awaitable<void> {
        constexpr std::size_t kChunk = 256 << 10, kHead = 16;
        for (std::size_t off = 0; off < data.size(); off += kChunk) {
          auto b = std::make_shared<net::Block>(kHead + kChunk);
          std::memcpy(b->bytes.get() + kHead, data.data() + off, kChunk);
          wr = co_await s.write_block(b, std::span<const std::uint8_t>(b->bytes.get() + kHead, kChunk));
          if (!wr) co_return;
        }
        wr = co_await s.shutdown_write();
      };
      auto reader = [&]() -> asio::awaitable<void> {
        for (;;) {
          auto v = co_await s.read_view();
          if (!v) { rd = std::move(v).error(); co_return; }
          if (v->empty()) co_return;
          got.insert(got.end(), v->begin(), v->end());
          s.consume_view(v->size());
        }
      };
      co_await (writer() && reader());
      REQUIRE_MESSAGE(wr, (wr ? "" : wr.error().message()));
      REQUIRE_MESSAGE(rd, (rd ? "" : rd.error().message()));
      CHECK(got.size() == data.size());
      CHECK((got == data));
      // Every byte we sent went out in place: one DATA frame per write_block, header in the headroom.
      CHECK((*c)->data_sent_in_place() == data.size());
      // Most of what came back was lent, not copied (small reads at TCP pace may be copied).
      CHECK((*c)->data_received_lent() > data.size() / 2);
      REQUIRE(server.sessions.size() == 1);
      server_session = server.sessions[0];
      CHECK(server_session->data_received_lent() > data.size() / 2);  // stream -> TCP from views
      CHECK(server_session->data_sent_in_place() > data.size() / 2);  // TCP -> stream via write_block
      (*c)->shutdown();
    }());
    CHECK_MESSAGE(server_copy, (server_copy ? "" : server_copy.error().message()));
    server.stop();
  }

  TEST_CASE("close() while a view is out keeps the viewed bytes alive and returns the window") {
    asio::io_context io(1);
    auto sender = [&](std::shared_ptr<h2::Stream> s) -> asio::awaitable<void> {
      REQUIRE(s->respond(200));
      auto body = pattern(1 << 20, 11);
      (void)co_await s->write_all(body);
      while (!s->finished()) co_await sleep_for(20ms);
    };
    H2Server server(io, quiet(), sender);
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await connect_client(server.port(), quiet());
      REQUIRE(c);
      auto st = co_await (*c)->connect("10.0.0.1:80", {}, 5s);
      REQUIRE(st);
      while ((*st)->buffered_bytes() < (1u << 20)) co_await sleep_for(10ms);
      auto v = co_await (*st)->read_view();
      REQUIRE(v);
      REQUIRE_FALSE(v->empty());
      const std::vector<std::uint8_t> copy(v->begin(), v->end());
      (*st)->close();
      CHECK((*c)->buffered_bytes() == 0);  // the window came back at close()
      CHECK((*st)->buffered_bytes() == 0);
      // The view is still readable (ASan would flag a freed block) and unchanged.
      CHECK(std::memcmp(v->data(), copy.data(), copy.size()) == 0);
      (*st)->consume_view(v->size());
      std::vector<std::uint8_t> buf(16);
      auto after = co_await (*st)->read_some(buf);
      REQUIRE_FALSE(after);
      CHECK(after.error().kind == ErrorKind::Cancelled);
      CHECK((*c)->alive());
      (*c)->shutdown();
    }());
    server.stop();
  }

  TEST_CASE("an abandoned write_block leaves its frames to the session, which keeps the block") {
    asio::io_context io(1);
    std::size_t received = 0;
    auto sink = [&](std::shared_ptr<h2::Stream> s) -> asio::awaitable<void> {  // answers, never reads
      REQUIRE(s->respond(200));
      while (!s->finished()) co_await sleep_for(20ms);
      received = s->buffered_bytes();
    };
    h2::Settings small = quiet();
    small.stream_window = 1 << 20;
    H2Server server(io, small, sink);
    run_coro(io, [&]() -> asio::awaitable<void> {
      using namespace asio::experimental::awaitable_operators;
      auto c = co_await connect_client(server.port(), quiet());
      REQUIRE(c);
      auto st = co_await (*c)->connect("10.0.0.1:81", {}, 5s);
      REQUIRE(st);
      std::weak_ptr<net::Block> watch;
      {
        // 8 MiB against a peer that grants 1 MiB and never reads: the write stalls after one in-place
        // frame; a timer wins.
        auto b = std::make_shared<net::Block>(16 + (8 << 20));
        watch = b;
        auto r = co_await ((*st)->write_block(b, std::span<const std::uint8_t>(b->bytes.get() + 16, 8 << 20)) ||
                           sleep_for(200ms));
        CHECK(r.index() == 1);
      }
      co_await sleep_for(200ms);
      CHECK((*st)->finished());          // abandoned: the stream was reset
      CHECK(watch.expired());            // and once written, the session let the block go
      CHECK(received <= (1u << 20));     // the peer got at most its window
      CHECK((*c)->alive());
      // The connection still carries new streams.
      auto st2 = co_await (*c)->connect("10.0.0.1:82", {}, 5s);
      CHECK(st2);
      (*c)->shutdown();
    }());
    server.stop();
  }

  TEST_CASE("a reader that does not read pins at most kMaxLentBlocks read blocks; the rest is copied") {
    asio::io_context io(1);
    h2::Settings s = quiet();
    s.stream_window = 4 << 20;
    s.connection_window = 16 << 20;
    constexpr int kStreams = 8;
    auto sender = [&](std::shared_ptr<h2::Stream> st) -> asio::awaitable<void> {
      REQUIRE(st->respond(200));
      auto body = pattern(4 << 20, static_cast<std::uint32_t>(st->id()));
      (void)co_await st->write_all(body);
      (void)co_await st->shutdown_write();
    };
    H2Server server(io, s, sender);
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await connect_client(server.port(), s);
      REQUIRE(c);
      std::vector<std::shared_ptr<h2::Stream>> streams;
      for (int i = 0; i < kStreams; ++i) {
        auto st = co_await (*c)->connect("10.0.0.1:80", {}, 5s);
        REQUIRE(st);
        streams.push_back(*st);
      }
      // Nobody reads: the connection window (16 MiB) fills up.
      for (int i = 0; i < 300 && (*c)->buffered_bytes() < (16u << 20); ++i) co_await sleep_for(10ms);
      CHECK((*c)->buffered_bytes() == (16u << 20));
      CHECK((*c)->lent_blocks() <= h2::Session::kMaxLentBlocks);
      // Everything still arrives intact once read (all streams at once: the connection window is shared).
      int intact = 0, done = 0;
      // Coroutine parameters, not lambda captures: the frame must own the stream.
      auto check = [](std::shared_ptr<h2::Stream> st, int& intact, int& done) -> asio::awaitable<void> {
        auto got = co_await send_and_receive(*st, {});
        if (got && *got == pattern(4 << 20, static_cast<std::uint32_t>(st->id()))) ++intact;
        ++done;
      };
      for (auto& st : streams) asio::co_spawn(co_await asio::this_coro::executor, check(st, intact, done), asio::detached);
      for (int i = 0; i < 500 && done < kStreams; ++i) co_await sleep_for(10ms);
      CHECK(intact == kStreams);
      (*c)->shutdown();
    }());
    server.stop();
  }
}
