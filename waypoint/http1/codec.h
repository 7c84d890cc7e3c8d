#pragma once
// HTTP/1.1 message heads, limits, parse errors and serialisation: the sans-I/O half of the waypoint's
// HTTP/1.1 codec. The parsers are in parser.h (on Boost.Beast's basic_parser), the coroutine reader over a
// net::ByteStream in reader.h.
//
// Errors. A parse failure is a Result error whose Error::code is the HTTP status the proxy answers with:
//   400 malformed (also: Content-Length with Transfer-Encoding, differing Content-Lengths, obs-fold,
//       NUL/CR/LF in a value),
//   414 request-target longer than Limits::max_target,
//   431 head (or a chunk line, or the trailer section) longer than Limits::max_header_bytes, or more than
//       Limits::max_headers fields,
//   501 Transfer-Encoding whose final coding is not "chunked",
//   505 HTTP version other than 1.0/1.1.
// Kinds: ErrorKind::Parse for 400/414/431, ErrorKind::Unsupported for 501/505. answer_status(e) reads the
// status back (0 for errors that are not parse failures: I/O, EOF). The same statuses come out of the
// ResponseParser; a proxy answers its client 502 for those (the status says what was wrong upstream).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/base/result.h"
#include "common/h2/headers.h"

namespace ambient::waypoint::http1 {

struct Limits {
  std::size_t max_header_bytes = 60 * 1024;  // request/status line + all headers (Envoy's 60 KiB default)
  std::size_t max_headers = 100;             // header fields (and, separately, trailer fields)
  std::size_t max_target = 8 * 1024;         // request-target length
};

// The parsers stop consuming input while this many decoded body bytes wait to be drained (body()).
inline constexpr std::size_t kBodyBufferLimit = 64 * 1024;

// A parse failure carrying the status to answer (see the top of this file).
Error parse_error(int status, std::string reason);
// The HTTP status a parse failure asks for; 0 when `e` is not a parse failure (I/O error, EOF, ...).
int answer_status(const Error& e) noexcept;

struct RequestHead {
  std::string method;                  // as sent ("GET", "CONNECT", extension methods too)
  std::string target;                  // as sent: origin-form "/p?q", absolute-form, authority-form (CONNECT), "*"
  unsigned version = 11;               // 10 | 11
  h2::Headers headers{};               // names lower-cased, values as received (OWS trimmed), order kept
  bool keep_alive = true;              // per version + Connection header
  bool chunked = false;                // Transfer-Encoding ends in "chunked"
  std::optional<std::uint64_t> content_length{};
  bool upgrade = false;                // Connection: upgrade + an Upgrade header (WebSocket, h2c, ...)
  bool expect_continue = false;        // Expect: 100-continue

  // The path: origin-form up to '?'; absolute-form: the path after the authority ("/" if none), up to '?';
  // authority-form (CONNECT) "": asterisk-form "*".
  std::string_view path() const;
  // The part after the first '?' ("" when none).
  std::string_view query() const;
  // First value of the header `lower_name` (lower-case).
  std::optional<std::string_view> header(std::string_view lower_name) const { return h2::find_header(headers, lower_name); }
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  unsigned version = 11;
  h2::Headers headers{};
  bool keep_alive = true;              // false also when the body is delimited by EOF
  bool chunked = false;
  std::optional<std::uint64_t> content_length{};  // as declared (also on HEAD/204/304 answers, which have no body)

  std::optional<std::string_view> header(std::string_view lower_name) const { return h2::find_header(headers, lower_name); }
};

// Request line + headers + empty line. Headers are written as given (the caller removes hop-by-hop
// headers and sets Content-Length / Transfer-Encoding to match how it sends the body).
std::string serialize(const RequestHead& head);
// Status line + headers + empty line; an empty reason gets the standard one for the status.
std::string serialize(const ResponseHead& head);
// One chunk: hex size CRLF data CRLF. An empty `data` appends nothing (an empty chunk would end the body).
void append_chunk(std::string& out, std::span<const std::uint8_t> data);
// The last chunk "0" CRLF, the trailers, and the final CRLF.
void append_last_chunk(std::string& out, const h2::Headers& trailers = {});

// Removes connection, keep-alive, proxy-connection, transfer-encoding, te, trailer, upgrade and every
// header named in a Connection header. Names in `headers` must be lower-case (as the parsers give them).
void remove_hop_by_hop(h2::Headers& headers);

}  // namespace ambient::waypoint::http1
