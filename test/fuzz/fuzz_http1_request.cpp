// fuzz_http1_request: the waypoint's HTTP/1.1 RequestParser (waypoint/http1/parser.h) over the bytes a
// downstream client sends on one keep-alive connection (pipelined requests).
//
// Input: byte 0 (low 3 bits) picks the size of the pieces the rest arrives in (1 .. all at once); the rest
// is the connection's bytes. Messages are parsed one after the other (reset() between them), bodies drained.
//
// Invariants:
//  - errors are Parse/Unsupported with a context and one of the statuses 400/414/431/501/505;
//  - feed() never consumes more than it was given, the body buffer stays within kBodyBufferLimit, no body
//    byte comes before the head;
//  - a head: version 1.0/1.1, lower-case names, no NUL/CR/LF in values, within the limits; never both
//    chunked and a Content-Length; a Content-Length body has exactly that many bytes;
//  - serialize(head) parses back to the same method, target, version and headers.
#include <cstdint>
#include <string>

#include "test/fuzz/fuzz_http1.h"

namespace {

using namespace ambient;
using namespace ambient::fuzz::http1;

void check_round_trip(const RequestHead& h) {
  Limits roomy = fuzz_limits();
  roomy.max_header_bytes *= 4;  // "name: value" may be longer than what was received ("name:value")
  RequestParser again(roomy);
  const std::string wire = serialize(h);
  auto r = again.feed(bytes(wire));
  FUZZ_CHECK(r.has_value(), "serialized head does not parse: {}", r.has_value() ? "" : r.error().message());
  FUZZ_CHECK(*r == wire.size() && again.head_done(), "serialized head not parsed whole ({} of {})", *r, wire.size());
  const auto& h2 = again.head();
  FUZZ_CHECK(h2.method == h.method && h2.target == h.target && h2.version == h.version, "request line changed: {} {}", h2.method,
             h2.target);
  FUZZ_CHECK(h2.headers.size() == h.headers.size(), "header count changed");
  for (std::size_t i = 0; i < h.headers.size(); ++i)
    FUZZ_CHECK(h2.headers[i].name == h.headers[i].name && h2.headers[i].value == h.headers[i].value, "header {} changed",
               h.headers[i].name);
  FUZZ_CHECK(h2.chunked == h.chunked && h2.content_length == h.content_length && h2.keep_alive == h.keep_alive &&
                 h2.upgrade == h.upgrade && h2.expect_continue == h.expect_continue,
             "derived flags changed");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string p = std::string(1, '\7');  // all at once
  const std::string one = std::string(1, '\0');  // one byte at a time
  fuzz::write_seeds_if_asked({
      {"get", p + "GET /index.html?a=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n"},
      {"post_length", one + "POST /api HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"k\": \"v\"}\n"},
      {"chunked_trailers", std::string(1, '\3') +
                               "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n"
                               "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: abc\r\n\r\n"},
      {"pipelined", p + "GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                        "GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
      {"upgrade", p + "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x05hello"},
      {"expect", std::string(1, '\4') + "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata"},
      {"connect", p + "CONNECT svc.ns.svc.cluster.local:443 HTTP/1.1\r\nHost: svc.ns.svc.cluster.local:443\r\n\r\n"},
      {"absolute", p + "GET http://example.com/p?q HTTP/1.1\r\nHost: example.com\r\nProxy-Connection: keep-alive\r\n\r\n"},
      {"smuggle", p + "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"obs_fold", p + "GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n"},
      {"te_gzip", p + "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"},
      {"http2_preface", p + "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const Limits limits = fuzz_limits();
  RequestParser p(limits);
  drive(
      p, fuzz::as_text(data + 1, size - 1), piece_size(data[0]), [](RequestParser&) {},
      [&](RequestParser& parser, std::uint64_t body_bytes) {
        const RequestHead& h = parser.head();
        FUZZ_CHECK(h.version == 10 || h.version == 11, "version {}", h.version);
        FUZZ_CHECK(!h.method.empty(), "empty method");
        FUZZ_CHECK(!h.target.empty() && h.target.size() <= limits.max_target, "target of {} bytes", h.target.size());
        FUZZ_CHECK(!(h.chunked && h.content_length), "chunked with a Content-Length");
        if (h.content_length) FUZZ_CHECK(body_bytes == *h.content_length, "body {} != Content-Length {}", body_bytes, *h.content_length);
        if (!h.chunked && !h.content_length) FUZZ_CHECK(body_bytes == 0, "body without a length");
        check_headers(h.headers, limits.max_headers);
        check_headers(parser.trailers(), limits.max_headers);
        check_round_trip(h);
      });
  return 0;
}
