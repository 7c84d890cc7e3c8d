// fuzz_http1_response: the waypoint's HTTP/1.1 ResponseParser (waypoint/http1/parser.h) over the bytes an
// upstream sends on one connection (1xx heads, then final responses, keep-alive).
//
// Input: byte 0: low 3 bits pick the piece size the rest arrives in; bit 3 says every response answers a
// HEAD request (no bodies). The rest is the connection's bytes; EOF at the end (feed_eof()).
//
// Invariants:
//  - errors are Parse/Unsupported with a context and one of 400/414/431/501/505, or Closed at EOF;
//  - feed() never consumes more than given, the body buffer stays bounded, no body byte before the head;
//  - no body for HEAD answers, 1xx, 204, 304; a Content-Length body has exactly that many bytes;
//    never both chunked and a Content-Length (when a body follows);
//  - serialize(head) parses back to the same status, version and headers.
#include <cstdint>
#include <string>

#include "test/fuzz/fuzz_http1.h"

namespace {

using namespace ambient;
using namespace ambient::fuzz::http1;

bool has_no_body(const ResponseHead& h, bool head_request) {
  return head_request || h.status / 100 == 1 || h.status == 204 || h.status == 304;
}

void check_round_trip(const ResponseHead& h, bool head_request) {
  Limits roomy = fuzz_limits();
  roomy.max_header_bytes *= 4;
  ResponseParser again(roomy);
  again.set_head_request(head_request);
  const std::string wire = serialize(h);
  auto r = again.feed(bytes(wire));
  FUZZ_CHECK(r.has_value(), "serialized head does not parse: {}", r.has_value() ? "" : r.error().message());
  FUZZ_CHECK(*r == wire.size() && again.head_done(), "serialized head not parsed whole ({} of {})", *r, wire.size());
  const auto& h2 = again.head();
  FUZZ_CHECK(h2.status == h.status && h2.version == h.version, "status line changed: {}", h2.status);
  FUZZ_CHECK(h.reason.empty() || h2.reason == h.reason, "reason changed");
  FUZZ_CHECK(h2.headers.size() == h.headers.size(), "header count changed");
  for (std::size_t i = 0; i < h.headers.size(); ++i)
    FUZZ_CHECK(h2.headers[i].name == h.headers[i].name && h2.headers[i].value == h.headers[i].value, "header {} changed",
               h.headers[i].name);
  FUZZ_CHECK(h2.chunked == h.chunked && h2.content_length == h.content_length, "framing changed");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string p = std::string(1, '\7');
  fuzz::write_seeds_if_asked({
      {"length", p + "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"},
      {"chunked_trailers", std::string(1, '\2') + "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                  "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n"},
      {"to_eof", p + "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nthe body runs to EOF"},
      {"continue_then_final", std::string(1, '\0') + "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"},
      {"head_answers", std::string(1, '\x0f') + "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
      {"no_content", p + "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n"},
      {"switching", p + "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"},
      {"keepalive_pair", std::string(1, '\5') + "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnopHTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
      {"http2", p + "HTTP/2.0 200 OK\r\n\r\n"},
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const Limits limits = fuzz_limits();
  const bool head_request = (data[0] & 8) != 0;
  ResponseParser p(limits);
  drive(
      p, fuzz::as_text(data + 1, size - 1), piece_size(data[0]), [&](ResponseParser& parser) { parser.set_head_request(head_request); },
      [&](ResponseParser& parser, std::uint64_t body_bytes) {
        const ResponseHead& h = parser.head();
        FUZZ_CHECK(h.version == 10 || h.version == 11, "version {}", h.version);
        FUZZ_CHECK(h.status >= 100 && h.status <= 999, "status {}", h.status);
        check_headers(h.headers, limits.max_headers);
        check_headers(parser.trailers(), limits.max_headers);
        if (has_no_body(h, head_request)) {
          FUZZ_CHECK(body_bytes == 0, "{} bytes of body in a {} (HEAD: {})", body_bytes, h.status, head_request);
        } else {
          FUZZ_CHECK(!(h.chunked && h.content_length), "chunked with a Content-Length");
          if (h.content_length) FUZZ_CHECK(body_bytes == *h.content_length, "body {} != Content-Length {}", body_bytes, *h.content_length);
        }
        check_round_trip(h, head_request);
      });
  return 0;
}
