// HTTP/1.1 parsers (sans-I/O), as tables: heads, bodies, limits, the status of every refusal, responses
// without bodies, 1xx, serialisation round trips and hop-by-hop removal. Every case runs with the input
// cut into pieces of several sizes (1 byte, a few bytes, all at once): incremental parsing must not change
// the outcome.
#include <doctest/doctest.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "waypoint/http1/codec.h"
#include "waypoint/http1/parser.h"

using namespace ambient;
using namespace ambient::waypoint::http1;

namespace {

std::span<const std::uint8_t> bytes(std::string_view s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }
std::string text(std::span<const std::uint8_t> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

constexpr std::size_t kPieces[] = {1, 7, 1 << 20};

// Feeds `wire` to `p` in pieces of `piece` bytes (keeping what feed() did not consume, as a caller
// must), draining the body into `body`, until the message is done or the input runs out. Returns the
// bytes consumed.
template <typename P>
Result<std::size_t> parse(P& p, std::string_view wire, std::size_t piece, std::string& body) {
  std::string pending;
  std::size_t offered = 0, consumed = 0;
  for (;;) {
    auto r = p.feed(bytes(pending));
    if (!r) return r.error();
    pending.erase(0, *r);
    consumed += *r;
    const auto b = p.body();
    body += text(b);
    p.consume_body(b.size());
    if (p.message_done() && p.body().empty()) break;
    if (*r == 0 && b.empty()) {
      if (offered == wire.size()) break;
      const std::size_t n = std::min(piece, wire.size() - offered);
      pending.append(wire.substr(offered, n));
      offered += n;
    }
  }
  return consumed;
}

std::string headers_text(const h2::Headers& hs) {
  std::string out;
  for (const auto& h : hs) out += h.name + "=" + h.value + ";";
  return out;
}

}  // namespace

TEST_CASE("request heads and bodies") {
  struct Case {
    const char* name;
    std::string wire;
    std::string method, target, headers, body, trailers;
    unsigned version;
    bool keep_alive, chunked, upgrade, expect_continue;
    std::optional<std::uint64_t> content_length;
  };
  const std::vector<Case> cases = {
      {"simple GET", "GET /index.html?a=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n", "GET", "/index.html?a=1",
       "host=example.com;user-agent=t;", "", "", 11, true, false, false, false, std::nullopt},
      {"names lower-cased, OWS trimmed, order kept", "GET / HTTP/1.1\r\nHOST:  a  \r\nX-B:\tv w \r\nx-a: 1\r\n\r\n", "GET", "/",
       "host=a;x-b=v w;x-a=1;", "", "", 11, true, false, false, false, std::nullopt},
      {"Connection: close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "GET", "/", "host=a;connection=close;", "",
       "", 11, false, false, false, false, std::nullopt},
      {"HTTP/1.0 defaults to close", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", "GET", "/", "host=a;", "", "", 10, false, false,
       false, false, std::nullopt},
      {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", "GET", "/",
       "host=a;connection=keep-alive;", "", "", 10, true, false, false, false, std::nullopt},
      {"Content-Length body", "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world", "POST", "/up",
       "host=a;content-length=11;", "hello world", "", 11, true, false, false, false, 11},
      {"Content-Length 0", "POST /up HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "POST", "/up", "content-length=0;", "", "", 11, true,
       false, false, false, 0},
      {"chunked with extensions and trailers",
       "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6;name=\"q v\";x\r\n world\r\n"
       "0;last\r\nX-Checksum: abc\r\nX-Other:  1 \r\n\r\n",
       "POST", "/up", "host=a;transfer-encoding=chunked;", "hello world", "x-checksum=abc;x-other=1;", 11, true, true, false, false,
       std::nullopt},
      {"gzip, chunked is chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST", "/",
       "transfer-encoding=gzip, chunked;", "abc", "", 11, true, true, false, false, std::nullopt},
      {"Expect: 100-continue", "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok", "PUT", "/x",
       "host=a;expect=100-Continue;content-length=2;", "ok", "", 11, true, false, false, true, 2},
      {"Upgrade: websocket", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "GET", "/ws",
       "host=a;connection=Upgrade;upgrade=websocket;", "", "", 11, true, false, true, false, std::nullopt},
      {"Upgrade header without Connection: upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", "GET", "/ws",
       "host=a;upgrade=websocket;", "", "", 11, true, false, false, false, std::nullopt},
      {"CONNECT authority-form", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "CONNECT",
       "example.com:443", "host=example.com:443;", "", "", 11, true, false, false, false, std::nullopt},
      {"absolute-form", "GET http://example.com/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", "http://example.com/p?q",
       "host=example.com;", "", "", 11, true, false, false, false, std::nullopt},
      {"same Content-Length twice", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "POST", "/",
       "content-length=3;content-length=3;", "abc", "", 11, true, false, false, false, 3},
  };
  for (const auto& c : cases) {
    for (std::size_t piece : kPieces) {
      const std::string case_name = c.name;
      CAPTURE(case_name);
      CAPTURE(piece);
      RequestParser p;
      std::string body;
      auto r = parse(p, c.wire, piece, body);
      REQUIRE_MESSAGE(r.has_value(), r.error().message());
      CHECK(*r == c.wire.size());
      REQUIRE(p.message_done());
      const auto& h = p.head();
      CHECK(h.method == c.method);
      CHECK(h.target == c.target);
      CHECK(h.version == c.version);
      CHECK(headers_text(h.headers) == c.headers);
      CHECK(body == c.body);
      CHECK(headers_text(p.trailers()) == c.trailers);
      CHECK(h.keep_alive == c.keep_alive);
      CHECK(h.chunked == c.chunked);
      CHECK(h.upgrade == c.upgrade);
      CHECK(h.expect_continue == c.expect_continue);
      CHECK(h.content_length == c.content_length);
    }
  }
}

TEST_CASE("request refusals carry the status to answer") {
  const std::string big_target = "/" + std::string(9000, 'a');
  std::string many_headers = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 101; ++i) many_headers += "X-H" + std::to_string(i) + ": v\r\n";
  many_headers += "\r\n";
  const std::string long_header = "GET / HTTP/1.1\r\nX-Big: " + std::string(61 * 1024, 'v') + "\r\n\r\n";
  std::string many_small = "GET / HTTP/1.1\r\n";  // 40 headers of 20 bytes: over a 500-byte limit only in sum
  for (int i = 0; i < 40; ++i) many_small += fmt::format("X-Header-{:02}: value\r\n", i);
  many_small += "\r\n";
  Limits small;
  small.max_header_bytes = 500;

  struct Case {
    const char* name;
    std::string wire;
    int status;
    Limits limits{};
  };
  const std::vector<Case> cases = {
      {"garbage", "GARBAGE\r\n\r\n", 400},
      {"space in method position", " GET / HTTP/1.1\r\n\r\n", 400},
      {"status line to a request parser", "HTTP/1.1 200 OK\r\n\r\n", 400},
      {"bare LF line endings", "GET / HTTP/1.1\nHost: a\n\n", 400},
      {"differing Content-Length", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
      {"Content-Length list that differs", "POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabcd", 400},
      {"bad Content-Length", "POST / HTTP/1.1\r\nContent-Length: 3x\r\n\r\nabc", 400},
      {"Content-Length then chunked", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400},
      {"chunked then Content-Length", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400},
      {"gzip with Content-Length", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n", 400},
      {"obs-fold after an empty value", "GET / HTTP/1.1\r\nX-A:\r\n\ttwo\r\nHost: a\r\n\r\n", 400},
      {"NUL in a value", std::string("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 28), 400},
      {"bare LF in a value", "GET / HTTP/1.1\r\nX-A: a\nb\r\n\r\n", 400},
      {"bare CR in a value", "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nX-A : b\r\n\r\n", 400},
      {"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400},
      {"chunk data longer than its size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 400},
      {"101 headers", many_headers, 431},
      {"61 KiB header", long_header, 431},
      {"head over the limit only in sum", many_small, 431, small},
      {"9000-byte target", "GET " + big_target + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
      {"Transfer-Encoding: gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc", 501},
      {"chunked, gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc", 501},
      {"Transfer-Encoding: identity", "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 501},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
      {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505},
      {"HTTP/1.1 with junk", "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400},
      {"HTTX/1.1", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400},
  };
  for (const auto& c : cases) {
    for (std::size_t piece : kPieces) {
      const std::string case_name = c.name;
      CAPTURE(case_name);
      CAPTURE(piece);
      RequestParser p(c.limits);
      std::string body;
      auto r = parse(p, c.wire, piece, body);
      CHECK_FALSE(r.has_value());
      if (r.has_value()) continue;  // report every row, not only the first
      CHECK(answer_status(r.error()) == c.status);
      CHECK(r.error().code == c.status);
      CHECK(r.error().kind == (c.status >= 500 ? ErrorKind::Unsupported : ErrorKind::Parse));
      CHECK_FALSE(r.error().context.empty());
      auto again = p.feed(bytes("GET / HTTP/1.1\r\n\r\n"));  // sticky until reset()
      REQUIRE_FALSE(again.has_value());
      CHECK(again.error().code == c.status);
    }
  }
}

TEST_CASE("head limits: exactly at the limit passes, one byte over is 431") {
  const std::string wire = "GET /abc HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(100, 'p') + "\r\n\r\n";
  for (std::size_t piece : kPieces) {
    CAPTURE(piece);
    Limits at;
    at.max_header_bytes = wire.size();
    RequestParser ok_parser(at);
    std::string body;
    auto r = parse(ok_parser, wire, piece, body);
    REQUIRE_MESSAGE(r.has_value(), r.error().message());
    CHECK(ok_parser.message_done());

    Limits over = at;
    over.max_header_bytes = wire.size() - 1;
    RequestParser bad(over);
    auto r2 = parse(bad, wire, piece, body);
    REQUIRE_FALSE(r2.has_value());
    CHECK(r2.error().code == 431);
  }
  Limits l;
  l.max_headers = 2;
  l.max_target = 4;
  {
    RequestParser p(l);
    CHECK(p.feed(bytes("GET /abc HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n")).has_value());
    CHECK(p.message_done());
  }
  {
    RequestParser p(l);
    auto r = p.feed(bytes("GET /abc HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == 431);
  }
  {
    RequestParser p(l);
    auto r = p.feed(bytes("GET /abcd HTTP/1.1\r\n\r\n"));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == 414);
  }
  {  // trailers are limited like headers (count and bytes)
    RequestParser p(l);
    std::string body;
    auto r = parse(p, "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 1 << 20, body);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == 431);
  }
  {
    Limits t;
    t.max_header_bytes = 100;
    RequestParser p(t);
    std::string body;
    auto r = parse(p, "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: " + std::string(200, 't') + "\r\n\r\n", 9, body);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == 431);
  }
}

TEST_CASE("pipelined requests: feed stops at the end of each message, reset parses the next") {
  const std::string wire =
      "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
      "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  RequestParser p;
  auto r = p.feed(bytes(wire));
  REQUIRE(r.has_value());
  CHECK(*r == wire.find("GET /b"));
  CHECK(p.message_done());
  CHECK(text(p.body()) == "abc");
  CHECK(p.feed(bytes(std::string_view(wire).substr(*r))).value() == 0);  // done: nothing more consumed
  p.consume_body(3);
  p.reset();
  CHECK_FALSE(p.started());
  auto r2 = p.feed(bytes(std::string_view(wire).substr(*r)));
  REQUIRE(r2.has_value());
  CHECK(*r + *r2 == wire.size());
  CHECK(p.head().target == "/b");
  CHECK(p.message_done());
}

TEST_CASE("Content-Length body fed one byte at a time") {
  const std::string head = "PUT /f HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
  RequestParser p;
  std::size_t consumed = 0;
  std::string pending;
  for (char ch : head) {  // head bytes are consumed line by line, possibly later than fed
    pending += ch;
    auto r = p.feed(bytes(pending));
    REQUIRE(r.has_value());
    pending.erase(0, *r);
    consumed += *r;
  }
  REQUIRE(consumed == head.size());
  REQUIRE(p.head_done());
  CHECK(p.head().content_length == 10u);
  std::string body;
  for (char ch : std::string("0123456789")) {
    CHECK_FALSE(p.message_done());
    auto r = p.feed(bytes(std::string_view(&ch, 1)));
    REQUIRE(r.has_value());
    CHECK(*r == 1);
    body += text(p.body());
    p.consume_body(p.body().size());
  }
  CHECK(p.message_done());
  CHECK(body == "0123456789");
}

TEST_CASE("body backpressure: feed stops consuming while 64 KiB wait to be drained") {
  for (bool chunked : {false, true}) {
    CAPTURE(chunked);
    const std::size_t len = 200000;
    const std::string payload(len, 'x');
    std::string wire = "POST /big HTTP/1.1\r\n";
    if (chunked) {
      wire += "Transfer-Encoding: chunked\r\n\r\n" + fmt::format("{:x}\r\n", len) + payload + "\r\n0\r\n\r\n";
    } else {
      wire += fmt::format("Content-Length: {}\r\n\r\n", len) + payload;
    }
    RequestParser p;
    std::size_t consumed = 0;
    auto r = p.feed(bytes(wire));
    REQUIRE(r.has_value());
    consumed += *r;
    CHECK(p.body().size() == kBodyBufferLimit);
    CHECK(consumed < wire.size());
    auto stalled = p.feed(bytes(std::string_view(wire).substr(consumed)));
    REQUIRE(stalled.has_value());
    CHECK(*stalled == 0);                       // full: nothing consumed
    CHECK(p.body().size() == kBodyBufferLimit);  // and the buffer did not grow
    p.consume_body(1000);                        // partial drain: room for exactly 1000 more
    auto more = p.feed(bytes(std::string_view(wire).substr(consumed)));
    REQUIRE(more.has_value());
    CHECK(*more == 1000);
    consumed += *more;
    std::size_t drained = 1000;
    while (!p.message_done() || !p.body().empty()) {
      drained += p.body().size();
      p.consume_body(p.body().size());
      auto f = p.feed(bytes(std::string_view(wire).substr(consumed)));
      REQUIRE(f.has_value());
      consumed += *f;
      CHECK(p.body().size() <= kBodyBufferLimit);
    }
    CHECK(drained == len);
    CHECK(consumed == wire.size());
  }
}

TEST_CASE("responses: bodies by length, chunked, EOF; none for HEAD, 1xx, 204, 304") {
  struct Case {
    const char* name;
    std::string wire;
    bool head_request;
    int status;
    std::string body, trailers;
    bool needs_eof;  // the body ends at EOF (feed_eof)
    bool keep_alive;
    std::size_t trailing;  // bytes at the end of `wire` that do not belong to the message
  };
  const std::string next = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  const std::vector<Case> cases = {
      {"Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 200, "hello", "", false, true, 0},
      {"chunked with trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\ngrpc-status: 0\r\n\r\n",
       false, 200, "abcde", "grpc-status=0;", false, true, 0},
      {"to EOF", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", false, 200, "until the end", "", true, false,
       0},
      {"HTTP/1.0 to EOF", "HTTP/1.0 200 OK\r\n\r\nold", false, 200, "old", "", true, false, 0},
      {"HEAD with Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + next, true, 200, "", "", false, true, next.size()},
      {"HEAD with chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + next, true, 200, "", "", false, true, next.size()},
      {"204", "HTTP/1.1 204 No Content\r\n\r\n" + next, false, 204, "", "", false, true, next.size()},
      {"304 with Content-Length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n" + next, false, 304, "", "", false, true, next.size()},
      {"100 Continue is a head of its own", "HTTP/1.1 100 Continue\r\n\r\n" + next, false, 100, "", "", false, true, next.size()},
      {"101 leaves the tunnel bytes", "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
       false, 101, "", "", false, true, 7},
  };
  for (const auto& c : cases) {
    for (std::size_t piece : kPieces) {
      const std::string case_name = c.name;
      CAPTURE(case_name);
      CAPTURE(piece);
      ResponseParser p;
      p.set_head_request(c.head_request);
      std::string body;
      auto r = parse(p, c.wire, piece, body);
      REQUIRE_MESSAGE(r.has_value(), r.error().message());
      REQUIRE(p.head_done());
      CHECK(p.head().status == c.status);
      CHECK(p.message_done() == !c.needs_eof);
      if (c.needs_eof) {
        REQUIRE(p.feed_eof().has_value());
        CHECK(p.message_done());
        body += text(p.body());
      }
      CHECK(body == c.body);
      CHECK(headers_text(p.trailers()) == c.trailers);
      CHECK(p.head().keep_alive == c.keep_alive);
      CHECK(*r == c.wire.size() - c.trailing);
    }
  }
}

TEST_CASE("response: 100 Continue, reset, then the final response") {
  const std::string wire = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  ResponseParser p;
  auto r = p.feed(bytes(wire));
  REQUIRE(r.has_value());
  CHECK(p.head().status == 100);
  CHECK(p.message_done());
  p.reset();
  auto r2 = p.feed(bytes(std::string_view(wire).substr(*r)));
  REQUIRE(r2.has_value());
  CHECK(p.head().status == 201);
  CHECK(p.head().reason == "Created");
  CHECK(text(p.body()) == "ok");
  CHECK(*r + *r2 == wire.size());
}

TEST_CASE("response refusals and EOF") {
  struct Case {
    const char* name;
    std::string wire;
    int status;
  };
  const std::vector<Case> cases = {
      {"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", 505},
      {"request line", "GET / HTTP/1.1\r\n\r\n", 400},
      {"Content-Length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"gzip and Content-Length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", 400},
      {"differing Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 2\r\n\r\nabc", 400},
      {"Transfer-Encoding: gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", 501},
      {"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", 400},
      {"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", 400},
  };
  for (const auto& c : cases) {
    for (std::size_t piece : kPieces) {
      const std::string case_name = c.name;
      CAPTURE(case_name);
      CAPTURE(piece);
      ResponseParser p;
      std::string body;
      auto r = parse(p, c.wire, piece, body);
      CHECK_FALSE(r.has_value());
      if (r.has_value()) continue;
      CHECK(answer_status(r.error()) == c.status);
    }
  }
  {  // EOF inside a Content-Length body
    ResponseParser p;
    auto r = p.feed(bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc"));
    REQUIRE(r.has_value());
    auto e = p.feed_eof();
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error().kind == ErrorKind::Closed);
    CHECK(answer_status(e.error()) == 0);
  }
  {  // EOF inside a head
    ResponseParser p;
    REQUIRE(p.feed(bytes("HTTP/1.1 200 OK\r\nContent-")).has_value());
    CHECK(p.feed_eof().error().kind == ErrorKind::Closed);
  }
}

TEST_CASE("serialize then parse gives the same head") {
  RequestHead req;
  req.method = "POST";
  req.target = "/api/v1/items?x=1&y=%20";
  req.version = 11;
  req.headers = {{"host", "svc.ns.svc.cluster.local"}, {"content-type", "application/json"}, {"x-multi", "a"}, {"x-multi", "b"},
                 {"transfer-encoding", "chunked"}};
  std::string wire = serialize(req);
  const std::string payload = "{\"k\": \"value\"}";
  append_chunk(wire, bytes(payload.substr(0, 5)));
  append_chunk(wire, {});  // nothing: an empty chunk would end the body
  append_chunk(wire, bytes(payload.substr(5)));
  append_last_chunk(wire, {{"x-trailer", "t1"}});

  for (std::size_t piece : kPieces) {
    RequestParser p;
    std::string body;
    auto r = parse(p, wire, piece, body);
    REQUIRE_MESSAGE(r.has_value(), r.error().message());
    CHECK(*r == wire.size());
    CHECK(p.head().method == req.method);
    CHECK(p.head().target == req.target);
    CHECK(p.head().version == req.version);
    CHECK(headers_text(p.head().headers) == headers_text(req.headers));
    CHECK(body == payload);
    CHECK(headers_text(p.trailers()) == "x-trailer=t1;");
  }

  RequestHead old;
  old.method = "GET";
  old.target = "/";
  old.version = 10;
  CHECK(serialize(old) == "GET / HTTP/1.0\r\n\r\n");

  ResponseHead resp;
  resp.status = 404;
  resp.headers = {{"content-length", "0"}, {"server", "waypoint"}};
  const std::string rw = serialize(resp);
  CHECK(rw.starts_with("HTTP/1.1 404 Not Found\r\n"));
  ResponseParser rp;
  auto rr = rp.feed(bytes(rw));
  REQUIRE(rr.has_value());
  CHECK(*rr == rw.size());
  CHECK(rp.head().status == 404);
  CHECK(rp.head().reason == "Not Found");
  CHECK(headers_text(rp.head().headers) == headers_text(resp.headers));
  CHECK(rp.message_done());

  resp.status = 299;
  resp.reason = "Custom Reason";
  CHECK(serialize(resp).starts_with("HTTP/1.1 299 Custom Reason\r\n"));
}

TEST_CASE("remove_hop_by_hop") {
  struct Case {
    const char* name;
    h2::Headers in;
    std::string out;
  };
  const std::vector<Case> cases = {
      {"the fixed list",
       {{"host", "a"}, {"connection", "keep-alive"}, {"keep-alive", "timeout=5"}, {"proxy-connection", "x"},
        {"transfer-encoding", "chunked"}, {"te", "trailers"}, {"trailer", "x-t"}, {"upgrade", "websocket"}, {"accept", "*/*"}},
       "host=a;accept=*/*;"},
      {"named in Connection, any case, several headers",
       {{"connection", "X-Foo , close"}, {"x-foo", "1"}, {"x-bar", "2"}, {"connection", "x-bar"}, {"x-baz", "3"}},
       "x-baz=3;"},
      {"nothing to remove", {{"host", "a"}, {"content-length", "3"}}, "host=a;content-length=3;"},
  };
  for (const auto& c : cases) {
    const std::string case_name = c.name;
    CAPTURE(case_name);
    h2::Headers hs = c.in;
    remove_hop_by_hop(hs);
    CHECK(headers_text(hs) == c.out);
  }
}

TEST_CASE("RequestHead path and query") {
  struct Case {
    std::string target, path, query;
  };
  const std::vector<Case> cases = {
      {"/", "/", ""},
      {"/a/b?x=1&y=2", "/a/b", "x=1&y=2"},
      {"/a?", "/a", ""},
      {"/a?b?c", "/a", "b?c"},
      {"http://example.com/p/q?z", "/p/q", "z"},
      {"http://example.com", "/", ""},
      {"http://example.com?q=1", "/", "q=1"},
      {"example.com:443", "", ""},
      {"*", "*", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.target);
    RequestHead h;
    h.target = c.target;
    CHECK(h.path() == c.path);
    CHECK(h.query() == c.query);
  }
}
