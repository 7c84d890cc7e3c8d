// Reader over a ByteStream (MemoryStream delivering the input in small pieces): pipelining, clean EOF,
// bodies in bounded pieces, Upgrade hand-over, 1xx then the final response, errors with their status.
#include <doctest/doctest.h>

#include <span>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "test/support/run_coro.h"
#include "test/waypoint/http1/memory_stream.h"
#include "waypoint/http1/reader.h"

using namespace ambient;
using namespace ambient::waypoint::http1;
using ambient::test::MemoryStream;
using ambient::test::run_coro;

namespace {

std::string text(std::span<const std::uint8_t> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

constexpr std::size_t kPieces[] = {1, 3, 1 << 20};

// Reads the rest of the current message's body; checks each piece respects the bound.
boost::asio::awaitable<Result<std::string>> read_all_body(Reader<MemoryStream>& r) {
  std::string out;
  for (;;) {
    auto piece = co_await r.read_body();
    if (!piece) co_return std::move(piece).error();
    if (piece->empty()) co_return out;
    if (piece->size() > kBodyBufferLimit) co_return make_error(ErrorKind::Internal, "piece over the bound");
    out += text(*piece);
  }
}

}  // namespace

TEST_CASE("Reader: pipelined keep-alive requests, then a clean close") {
  const std::string wire =
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nx-t: 1\r\n\r\n";
  for (std::size_t piece : kPieces) {
    CAPTURE(piece);
    boost::asio::io_context io;
    MemoryStream s(wire, piece);
    Reader<MemoryStream> r(s);
    auto check = [&]() -> boost::asio::awaitable<void> {
      auto h1 = co_await r.read_request_head();
      REQUIRE(h1.has_value());
      REQUIRE(*h1 != nullptr);
      CHECK((*h1)->target == "/a");
      auto b1 = co_await read_all_body(r);
      CHECK(b1.value() == "");

      auto h2 = co_await r.read_request_head();
      REQUIRE(h2.has_value());
      REQUIRE(*h2 != nullptr);
      CHECK((*h2)->target == "/b");
      auto b2 = co_await read_all_body(r);
      CHECK(b2.value() == "hello");

      auto h3 = co_await r.read_request_head();
      REQUIRE(h3.has_value());
      REQUIRE(*h3 != nullptr);
      CHECK((*h3)->chunked);
      auto b3 = co_await read_all_body(r);
      CHECK(b3.value() == "hi");
      REQUIRE(r.trailers().size() == 1);
      CHECK(r.trailers()[0].name == "x-t");

      auto end = co_await r.read_request_head();
      REQUIRE(end.has_value());
      CHECK(*end == nullptr);  // clean close between messages
    };
    run_coro(io, check());
  }
}

TEST_CASE("Reader: EOF inside a head or a body is Closed, not a clean close") {
  struct Case {
    const char* name;
    std::string wire;
  };
  const Case cases[] = {
      {"inside the request line", "GET /a HT"},
      {"inside the headers", "GET /a HTTP/1.1\r\nHost: h\r\n"},
      {"inside a Content-Length body", "POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"},
      {"inside a chunked body", "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"},
  };
  for (const auto& c : cases) {
    const std::string case_name = c.name;
    CAPTURE(case_name);
    boost::asio::io_context io;
    MemoryStream s(c.wire, 2);
    Reader<MemoryStream> r(s);
    auto err = run_coro(io, [&]() -> boost::asio::awaitable<Result<std::string>> {
      auto h = co_await r.read_request_head();
      if (!h) co_return std::move(h).error();
      co_return co_await read_all_body(r);
    }());
    REQUIRE_FALSE(err.has_value());
    CHECK(err.error().kind == ErrorKind::Closed);
    CHECK(answer_status(err.error()) == 0);
  }
}

TEST_CASE("Reader: a large body arrives in bounded pieces") {
  const std::size_t len = 300000;
  std::string payload;
  for (std::size_t i = 0; i < len; ++i) payload += static_cast<char>('a' + i % 26);
  const std::string wire = fmt::format("PUT /big HTTP/1.1\r\nContent-Length: {}\r\n\r\n", len) + payload;
  boost::asio::io_context io;
  MemoryStream s(wire, 100000);
  Reader<MemoryStream> r(s);
  auto body = run_coro(io, [&]() -> boost::asio::awaitable<Result<std::string>> {
    auto h = co_await r.read_request_head();
    if (!h) co_return std::move(h).error();
    co_return co_await read_all_body(r);
  }());
  REQUIRE(body.has_value());
  CHECK(body->size() == len);
  CHECK(*body == payload);
}

TEST_CASE("Reader: Upgrade request hands the bytes after the head to the tunnel") {
  const std::string frames = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  const std::string wire = "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + frames;
  boost::asio::io_context io;
  MemoryStream s(wire);  // one read: the frames arrive with the head
  Reader<MemoryStream> r(s);
  auto check = [&]() -> boost::asio::awaitable<void> {
    auto h = co_await r.read_request_head();
    REQUIRE(h.has_value());
    REQUIRE(*h != nullptr);
    CHECK((*h)->upgrade);
    auto b = co_await r.read_body();
    REQUIRE(b.has_value());
    CHECK(b->empty());
    CHECK(text(r.take_buffered()) == frames);
    CHECK(r.take_buffered().empty());
  };
  run_coro(io, check());
}

TEST_CASE("Reader: 100 Continue, then the final response; a response ending at EOF") {
  for (std::size_t piece : kPieces) {
    CAPTURE(piece);
    const std::string wire =
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"  // answers a HEAD: no body
        "HTTP/1.1 200 OK\r\n\r\nthe rest until EOF";
    boost::asio::io_context io;
    MemoryStream s(wire, piece);
    Reader<MemoryStream> r(s);
    auto check = [&]() -> boost::asio::awaitable<void> {
      auto h = co_await r.read_response_head(false);
      REQUIRE(h.has_value());
      CHECK((*h)->status == 100);
      auto b0 = co_await read_all_body(r);
      CHECK(b0.value() == "");
      auto h2 = co_await r.read_response_head(false);
      REQUIRE(h2.has_value());
      CHECK((*h2)->status == 200);
      auto b2 = co_await read_all_body(r);
      CHECK(b2.value() == "ok");
      auto h3 = co_await r.read_response_head(true);
      REQUIRE(h3.has_value());
      CHECK((*h3)->content_length == 9u);
      auto b3 = co_await read_all_body(r);
      CHECK(b3.value() == "");
      auto h4 = co_await r.read_response_head(false);
      REQUIRE(h4.has_value());
      CHECK_FALSE((*h4)->keep_alive);
      auto b4 = co_await read_all_body(r);
      REQUIRE(b4.has_value());
      CHECK(*b4 == "the rest until EOF");
    };
    run_coro(io, check());
  }
}

TEST_CASE("Reader: errors carry the status; a head before the body was read is refused") {
  struct Case {
    const char* name;
    std::string wire;
    int status;
  };
  const Case cases[] = {
      {"oversized head", "GET / HTTP/1.1\r\nX-Big: " + std::string(70 * 1024, 'b') + "\r\n\r\n", 431},
      {"smuggling", "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"HTTP/3.0", "GET / HTTP/3.0\r\n\r\n", 505},
  };
  for (const auto& c : cases) {
    const std::string case_name = c.name;
    CAPTURE(case_name);
    boost::asio::io_context io;
    MemoryStream s(c.wire, 4096);
    Reader<MemoryStream> r(s);
    auto h = run_coro(io, r.read_request_head());
    REQUIRE_FALSE(h.has_value());
    CHECK(answer_status(h.error()) == c.status);
  }
  {
    boost::asio::io_context io;
    MemoryStream s("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n");
    Reader<MemoryStream> r(s);
    REQUIRE(run_coro(io, r.read_request_head()).has_value());
    auto next = run_coro(io, r.read_request_head());
    REQUIRE_FALSE(next.has_value());
    CHECK(next.error().kind == ErrorKind::InvalidArgument);
  }
}
