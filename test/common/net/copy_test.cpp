#include <doctest/doctest.h>

#include <algorithm>
#include <optional>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include "common/net/copy.h"
#include "common/net/tcp_stream.h"
#include "test/common/net/net_test_support.h"
#include "test/support/paths.h"

using namespace ambient;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;

namespace {

const tcp::endpoint kLoopback{asio::ip::make_address("127.0.0.1"), 0};
constexpr std::uint64_t KiB = 1024;
constexpr std::uint64_t MiB = 1024 * KiB;

// What one side of a test connection observed while reading.
struct Received {
  std::uint64_t bytes = 0;
  long long mismatch = -1;     // offset of the first byte that was not the pattern
  std::optional<Error> error;  // set when the stream failed instead of ending with EOF
};

// Writes `n` bytes of the pattern, then (optionally) half-closes.
awaitable<Result<void>> send_pattern(net::TcpStream& s, std::uint64_t n, bool then_shutdown) {
  std::vector<std::uint8_t> chunk(64 * KiB);
  for (std::uint64_t off = 0; off < n;) {
    const auto len = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), n - off));
    test::fill_pattern({chunk.data(), len}, off);
    if (auto r = co_await s.write_all({chunk.data(), len}); !r) co_return r;
    off += len;
  }
  if (then_shutdown) co_return co_await s.shutdown_write();
  co_return ok();
}

// Reads until EOF (or error, or `stop_after` bytes), checking every byte against the pattern.
awaitable<Received> receive_pattern(net::TcpStream& s, std::uint64_t stop_after = UINT64_MAX) {
  Received got;
  std::vector<std::uint8_t> buf(64 * KiB);
  while (got.bytes < stop_after) {
    auto n = co_await s.read_some(buf);
    if (!n) {
      got.error = n.error();
      break;
    }
    if (*n == 0) break;
    if (got.mismatch < 0) got.mismatch = test::pattern_mismatch({buf.data(), *n}, got.bytes);
    got.bytes += *n;
  }
  co_return got;
}

// Echo upstream: returns what it read; writes it back; forwards EOF as its own FIN.
awaitable<std::uint64_t> echo_server(tcp::acceptor& acc) {
  auto s = co_await net::accept(acc);
  REQUIRE(s);
  std::vector<std::uint8_t> buf(64 * KiB);
  std::uint64_t total = 0;
  Result<void> failure = ok();
  for (;;) {
    auto n = co_await s->read_some(buf);
    if (!n) failure = std::move(n).error();
    if (!n || *n == 0) break;
    failure = co_await s->write_all({buf.data(), *n});
    if (!failure) break;
    total += *n;
  }
  if (failure) failure = co_await s->shutdown_write();
  CHECK_MESSAGE(failure, (failure ? "" : failure.error().message()));
  co_return total;
}

// What the proxy under test saw.
struct ProxyRun {
  net::CopyStats stats;
  Result<void> result;
  bool a_open_after = true;
  bool b_open_after = true;
};

// The proxy under test: accept one client (stream a), connect upstream (stream b), copy.
awaitable<void> proxy_one(tcp::acceptor& front, tcp::endpoint upstream, ProxyRun& run) {
  auto a = co_await net::accept(front);
  REQUIRE(a);
  auto b = co_await net::connect(upstream, 5s);
  REQUIRE(b);
  run.result = co_await net::copy_bidirectional(*a, *b, run.stats);
  run.a_open_after = a->socket().is_open();
  run.b_open_after = b->socket().is_open();
}

// Listeners for one test: the proxy's front and the upstream server.
struct Topology {
  tcp::acceptor front;
  tcp::acceptor upstream;
  static Topology make(const asio::any_io_executor& ex) {
    auto f = net::listen(ex, kLoopback);
    auto u = net::listen(ex, kLoopback);
    REQUIRE(f);
    REQUIRE(u);
    return Topology{std::move(*f), std::move(*u)};
  }
};

}  // namespace

TEST_SUITE("common/net/copy") {
  TEST_CASE("client -> proxy -> echo is byte-exact, stats match, buffers grow with the volume") {
    struct Row {
      std::uint64_t size;
      std::size_t want_buffer;  // largest buffer the proxy should have reached in each direction
    };
    for (const Row row : {Row{0, net::CopyBuffer::kInitialSize}, Row{1 * KiB, net::CopyBuffer::kInitialSize},
                          Row{1 * MiB, net::CopyBuffer::kLargeSize}, Row{20 * MiB, net::CopyBuffer::kJumboSize},
                          Row{64 * MiB, net::CopyBuffer::kJumboSize}}) {
      CAPTURE(row.size);
      ProxyRun run;
      std::uint64_t echoed = 0;
      Received back;
      test::run_fresh([&](asio::io_context& io) -> awaitable<void> {
        auto topo = Topology::make(io.get_executor());
        auto client = [&]() -> awaitable<void> {
          auto c = co_await net::connect(topo.front.local_endpoint(), 5s);
          REQUIRE(c);
          auto [sent, got] = co_await (send_pattern(*c, row.size, true) && receive_pattern(*c));
          CHECK(sent);
          back = got;
        };
        auto echo = [&]() -> awaitable<void> { echoed = co_await echo_server(topo.upstream); };
        co_await (proxy_one(topo.front, topo.upstream.local_endpoint(), run) && echo() && client());
      });
      REQUIRE(run.result);
      CHECK(echoed == row.size);
      CHECK_FALSE(back.error);
      CHECK(back.bytes == row.size);
      CHECK(back.mismatch == -1);
      CHECK(run.stats.a_to_b.bytes == row.size);
      CHECK(run.stats.b_to_a.bytes == row.size);
      CHECK(run.stats.a_to_b.eof);
      CHECK(run.stats.b_to_a.eof);
      CHECK_FALSE(run.stats.failed);
      CHECK(run.stats.a_to_b.buffer_size == row.want_buffer);
      CHECK(run.stats.b_to_a.buffer_size == row.want_buffer);
    }
  }

  TEST_CASE("half-close: the client's FIN reaches the server, which still answers") {
    constexpr std::uint64_t kRequest = 100 * KiB;
    constexpr std::uint64_t kResponse = 1 * MiB;
    ProxyRun run;
    Received at_server, at_client;
    test::run_fresh([&](asio::io_context& io) -> awaitable<void> {
      auto topo = Topology::make(io.get_executor());
      // Answers only after the request ended: proves the FIN crossed the proxy.
      auto server = [&]() -> awaitable<void> {
        auto s = co_await net::accept(topo.upstream);
        REQUIRE(s);
        at_server = co_await receive_pattern(*s);
        CHECK(co_await send_pattern(*s, kResponse, true));
      };
      auto client = [&]() -> awaitable<void> {
        auto c = co_await net::connect(topo.front.local_endpoint(), 5s);
        REQUIRE(c);
        CHECK(co_await send_pattern(*c, kRequest, true));
        at_client = co_await receive_pattern(*c);  // reading goes on after our own FIN
      };
      co_await (proxy_one(topo.front, topo.upstream.local_endpoint(), run) && server() && client());
    });
    REQUIRE(run.result);
    CHECK_FALSE(at_server.error);
    CHECK(at_server.bytes == kRequest);
    CHECK(at_server.mismatch == -1);
    CHECK_FALSE(at_client.error);
    CHECK(at_client.bytes == kResponse);
    CHECK(at_client.mismatch == -1);
    CHECK(run.stats.a_to_b.bytes == kRequest);
    CHECK(run.stats.b_to_a.bytes == kResponse);
  }

  TEST_CASE("half-close: the server's FIN reaches the client, which can still send") {
    constexpr std::uint64_t kGreeting = 64 * KiB;
    constexpr std::uint64_t kUpload = 1 * MiB;
    ProxyRun run;
    Received at_server, at_client;
    test::run_fresh([&](asio::io_context& io) -> awaitable<void> {
      auto topo = Topology::make(io.get_executor());
      auto server = [&]() -> awaitable<void> {
        auto s = co_await net::accept(topo.upstream);
        REQUIRE(s);
        CHECK(co_await send_pattern(*s, kGreeting, true));  // server closes its side first
        at_server = co_await receive_pattern(*s);
      };
      // Uploads only after the greeting ended: proves the server's FIN crossed the proxy first.
      auto client = [&]() -> awaitable<void> {
        auto c = co_await net::connect(topo.front.local_endpoint(), 5s);
        REQUIRE(c);
        at_client = co_await receive_pattern(*c);
        CHECK(co_await send_pattern(*c, kUpload, true));
      };
      co_await (proxy_one(topo.front, topo.upstream.local_endpoint(), run) && server() && client());
    });
    REQUIRE(run.result);
    CHECK_FALSE(at_client.error);
    CHECK(at_client.bytes == kGreeting);
    CHECK(at_client.mismatch == -1);
    CHECK_FALSE(at_server.error);
    CHECK(at_server.bytes == kUpload);
    CHECK(at_server.mismatch == -1);
    CHECK(run.stats.b_to_a.bytes == kGreeting);
    CHECK(run.stats.a_to_b.bytes == kUpload);
  }

  TEST_CASE("upstream reset mid-stream: error names side b, both sides closed, no fd leak") {
    constexpr std::uint64_t kResetAfter = 256 * KiB;
    const int fds_before = test::open_fd_count();
    ProxyRun run;
    Received at_client, at_server;
    Result<void> client_send;
    test::run_fresh([&](asio::io_context& io) -> awaitable<void> {
      auto topo = Topology::make(io.get_executor());
      auto server = [&]() -> awaitable<void> {
        auto s = co_await net::accept(topo.upstream);
        REQUIRE(s);
        at_server = co_await receive_pattern(*s, kResetAfter);
        // Abort with SO_LINGER 0, set here directly rather than through the code under test.
        s->socket().set_option(asio::socket_base::linger(true, 0));
        s->socket().close();
      };
      auto client = [&]() -> awaitable<void> {
        auto c = co_await net::connect(topo.front.local_endpoint(), 5s);
        REQUIRE(c);
        auto [sent, got] = co_await (send_pattern(*c, 64 * MiB, true) && receive_pattern(*c));
        client_send = sent;
        at_client = got;
      };
      co_await (proxy_one(topo.front, topo.upstream.local_endpoint(), run) && server() && client());
    });
    REQUIRE_FALSE(run.result);
    CAPTURE(run.result.error().message());
    REQUIRE(run.stats.failed);
    CHECK(*run.stats.failed == net::CopySide::B);
    const auto& ctx = run.result.error().context;
    CHECK((ctx.find("read b") != std::string::npos || ctx.find("write b") != std::string::npos));
    CHECK_FALSE(run.a_open_after);
    CHECK_FALSE(run.b_open_after);
    CHECK(at_server.bytes >= kResetAfter);
    CHECK(at_server.mismatch == -1);
    CHECK(run.stats.a_to_b.bytes < 64 * MiB);
    // The client learns of the failure as a reset (the proxy aborted its side, and did not forward
    // the upstream reset as a FIN first), on both of its operations.
    REQUIRE_FALSE(client_send);
    CAPTURE(client_send.error().message());
    CHECK((client_send.error().code == ECONNRESET || client_send.error().code == EPIPE));
    REQUIRE(at_client.error);
    CHECK(at_client.error->code == ECONNRESET);
    CHECK(at_client.bytes == 0);  // the upstream never sent anything
    CHECK_FALSE(run.stats.b_to_a.eof);
    CHECK(test::open_fd_count() == fds_before);
  }

  TEST_CASE("a copy raced with a drain signal (||) is cancelled: both streams aborted") {
    ProxyRun run;
    bool drained = false;
    Received at_client;
    test::run_fresh([&](asio::io_context& io) -> awaitable<void> {
      auto topo = Topology::make(io.get_executor());
      asio::steady_timer drain(io, asio::steady_timer::time_point::max());  // fires when cancelled
      auto proxy = [&]() -> awaitable<void> {
        auto a = co_await net::accept(topo.front);
        REQUIRE(a);
        auto b = co_await net::connect(topo.upstream.local_endpoint(), 5s);
        REQUIRE(b);
        auto first = co_await (net::copy_bidirectional(*a, *b, run.stats) ||
                               drain.async_wait(asio::as_tuple(asio::use_awaitable)));
        drained = first.index() == 1;
        run.a_open_after = a->socket().is_open();
        run.b_open_after = b->socket().is_open();
      };
      // One echoed round trip proves the copy is running, then the client asks for the drain and
      // waits for the proxy's reaction.
      auto client = [&]() -> awaitable<void> {
        auto c = co_await net::connect(topo.front.local_endpoint(), 5s);
        REQUIRE(c);
        REQUIRE(co_await send_pattern(*c, 1000, false));
        auto echoed = co_await receive_pattern(*c, 1000);
        CHECK(echoed.bytes == 1000);
        drain.cancel();
        at_client = co_await receive_pattern(*c);
      };
      auto echo = [&]() -> awaitable<void> {
        auto s = co_await net::accept(topo.upstream);
        REQUIRE(s);
        std::vector<std::uint8_t> buf(4096);
        for (;;) {
          auto n = co_await s->read_some(buf);
          if (!n || *n == 0) break;
          if (!co_await s->write_all({buf.data(), *n})) break;
        }
      };
      co_await (proxy() && echo() && client());
    });
    CHECK(drained);
    CHECK_FALSE(run.a_open_after);
    CHECK_FALSE(run.b_open_after);
    CHECK(run.stats.a_to_b.bytes == 1000);
    CHECK(run.stats.b_to_a.bytes == 1000);
    REQUIRE(at_client.error);
    CHECK(at_client.error->code == ECONNRESET);
  }

  TEST_CASE("copy_bidirectional without a stats argument returns the stats") {
    Result<net::CopyStats> stats = errorf(ErrorKind::Internal, "not run");
    test::run_fresh([&](asio::io_context& io) -> awaitable<void> {
      auto topo = Topology::make(io.get_executor());
      auto proxy = [&]() -> awaitable<void> {
        auto a = co_await net::accept(topo.front);
        REQUIRE(a);
        auto b = co_await net::connect(topo.upstream.local_endpoint(), 5s);
        REQUIRE(b);
        stats = co_await net::copy_bidirectional(*a, *b);
      };
      auto client = [&]() -> awaitable<void> {
        auto c = co_await net::connect(topo.front.local_endpoint(), 5s);
        REQUIRE(c);
        auto [sent, got] = co_await (send_pattern(*c, 3000, true) && receive_pattern(*c));
        CHECK(sent);
        CHECK(got.bytes == 3000);
      };
      auto echo = [&]() -> awaitable<void> { co_await echo_server(topo.upstream); };
      co_await (proxy() && echo() && client());
    });
    REQUIRE(stats);
    CHECK(stats->a_to_b.bytes == 3000);
    CHECK(stats->b_to_a.bytes == 3000);
  }
}
