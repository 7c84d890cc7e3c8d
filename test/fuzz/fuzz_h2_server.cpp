// fuzz_h2_server: raw bytes from an HTTP/2 client into h2::Session::server (common/h2/session.h), as
// ztunnel's 15008 runs it behind TLS, over an in-memory h2::Transport.
//
// Input: byte 0 (low 3 bits) picks the size of the pieces read_some hands out (kPieces); the rest are the
// frames the client sends after its preface, which the target prepends (so the fuzzer explores frames, not
// the preface). After the last byte (and kEofDelay turns of the event loop, so handlers can answer) the
// transport reports EOF. What the session writes is counted and dropped.
// The handler is shaped like ztunnel's: a request other than CONNECT gets 400 and END_STREAM; a CONNECT gets
// 200, its body is read to the end, then a short body and END_STREAM go back. Settings: Istio's defaults
// without keepalive (ping_interval 0: no timers, so the io_context runs dry once the input is consumed).
//
// Invariants:
//  - run() completes once the input is exhausted (polled until idle, at most kMaxRounds rounds), ok or a
//    Closed / H2Protocol / ResourceExhausted error with a context;
//  - every handler started has finished, and nothing but this function holds the session then;
//  - the session writes at most kWriteAllowance + kWriteFactor x the input's bytes;
//  - no leak (LeakSanitizer) of sessions, streams or read blocks.
#include <nghttp2/nghttp2.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/h2/session.h"
#include "test/fuzz/fuzz_support.h"

namespace {

using namespace ambient;
namespace asio = boost::asio;

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::array<std::size_t, 8> kPieces = {1, 2, 3, 9, 17, 100, 1024, std::size_t(-1)};
constexpr std::size_t kMaxRounds = 100'000;
constexpr int kEofDelay = 32;  // event loop turns between the last byte and the EOF
// Our SETTINGS + connection WINDOW_UPDATE, a GOAWAY, and what a few streams' answers cost.
constexpr std::size_t kWriteAllowance = 4096;
// Per input byte: the dearest answers (a HEADERS of a few bytes that opens a stream: response HEADERS,
// DATA, END_STREAM; a PING: its ACK) stay within a small multiple of what the client sent.
constexpr std::size_t kWriteFactor = 8;

// Serves `in` in pieces of at most `piece` bytes, then EOF; counts and drops what is written.
class FuzzTransport final : public h2::Transport {
 public:
  FuzzTransport(std::string in, std::size_t piece, std::shared_ptr<std::size_t> written)
      : in_(std::move(in)), piece_(piece), written_(std::move(written)) {}

  // h2::Transport
  asio::awaitable<Result<std::size_t>> read_some(std::span<std::uint8_t> buf) override {
    if (closed_) co_return make_error(ErrorKind::Cancelled, "fuzz transport closed");
    if (pos_ == in_.size()) {
      // Before the EOF, let the handlers woken by the last bytes answer (as a peer waiting for them would).
      for (int i = 0; i < kEofDelay && !closed_; ++i) co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
      if (closed_) co_return make_error(ErrorKind::Cancelled, "fuzz transport closed");
    }
    const std::size_t n = std::min({buf.size(), piece_, in_.size() - pos_});
    std::memcpy(buf.data(), in_.data() + pos_, n);
    pos_ += n;
    co_return n;  // 0 at the end: EOF
  }
  asio::awaitable<Result<void>> write_all(std::span<const std::uint8_t> buf) override {
    if (closed_) co_return make_error(ErrorKind::Closed, "fuzz transport closed");
    *written_ += buf.size();
    co_return ok();
  }
  asio::awaitable<Result<void>> shutdown_write() override { co_return ok(); }
  void close() noexcept override { closed_ = true; }

 private:
  std::string in_;
  std::size_t pos_ = 0;
  std::size_t piece_;
  std::shared_ptr<std::size_t> written_;
  bool closed_ = false;
};

struct HandlerCount {
  std::size_t started = 0, finished = 0;
};

h2::Session::Handler make_handler(std::shared_ptr<HandlerCount> count) {
  return [count](std::shared_ptr<h2::Stream> s) -> asio::awaitable<void> {
    ++count->started;
    struct Done {
      HandlerCount& c;
      ~Done() { ++c.finished; }
    } done{*count};
    if (h2::find_header(s->request_headers(), ":method") != "CONNECT") {
      (void)s->respond(400, {}, true);
      co_return;
    }
    if (!s->respond(200)) co_return;
    std::array<std::uint8_t, 4096> buf;
    for (;;) {
      auto n = co_await s->read_some(buf);
      if (!n) co_return;
      if (*n == 0) break;
    }
    static constexpr std::string_view kBody = "fuzz_h2_server: bye\n";
    if (!co_await s->write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(kBody.data()), kBody.size())))
      co_return;
    (void)co_await s->shutdown_write();
  };
}

// ---- seeds: frames as a client writes them ----

std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, std::string_view payload) {
  std::string f;
  const auto len = static_cast<std::uint32_t>(payload.size());
  for (int shift : {16, 8, 0}) f.push_back(static_cast<char>((len >> shift) & 0xff));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  for (int shift : {24, 16, 8, 0}) f.push_back(static_cast<char>((stream >> shift) & 0xff));
  f.append(payload);
  return f;
}

std::string u32(std::uint32_t v) {
  std::string s;
  for (int shift : {24, 16, 8, 0}) s.push_back(static_cast<char>((v >> shift) & 0xff));
  return s;
}

// A header block encoded with one connection's HPACK deflater (its dynamic table carries over).
class Deflater {
 public:
  Deflater() { nghttp2_hd_deflate_new(&d_, 4096); }
  ~Deflater() { nghttp2_hd_deflate_del(d_); }
  std::string operator()(const std::vector<std::pair<std::string, std::string>>& headers) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : headers)
      nv.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                    reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    std::string out(nghttp2_hd_deflate_bound(d_, nv.data(), nv.size()), '\0');
    const auto n = nghttp2_hd_deflate_hd(d_, reinterpret_cast<std::uint8_t*>(out.data()), out.size(), nv.data(), nv.size());
    out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    return out;
  }

 private:
  nghttp2_hd_deflater* d_ = nullptr;
};

std::vector<std::pair<std::string, std::string>> connect_headers(std::string authority) {
  return {{":method", "CONNECT"},
          {":authority", std::move(authority)},
          {"baggage", "k8s.namespace.name=ns,k8s.deployment.name=client"},
          {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}};
}

std::vector<std::pair<std::string, std::string>> seeds() {
  const std::string settings = frame(NGHTTP2_SETTINGS, 0, 0, "") + frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, "");
  const std::uint8_t eh = NGHTTP2_FLAG_END_HEADERS, es = NGHTTP2_FLAG_END_STREAM;
  std::vector<std::pair<std::string, std::string>> out;
  {
    Deflater hd;
    out.push_back({"connect_data", std::string(1, '\7') + settings +
                                       frame(NGHTTP2_HEADERS, eh, 1, hd(connect_headers("10.0.2.1:8080"))) +
                                       frame(NGHTTP2_DATA, 0, 1, "hello") + frame(NGHTTP2_DATA, es, 1, " world")});
  }
  {
    Deflater hd;
    out.push_back({"get_end_stream", std::string(1, '\6') +
                                         frame(NGHTTP2_SETTINGS, 0, 0, std::string("\0\4", 2) + u32(65535)) +
                                         frame(NGHTTP2_HEADERS, eh | es, 1,
                                               hd({{":method", "GET"}, {":scheme", "https"}, {":path", "/"},
                                                   {":authority", "example.com"}}))});
  }
  {
    Deflater hd;
    out.push_back({"rst_ping_window_goaway",
                   std::string(1, '\5') + settings + frame(NGHTTP2_HEADERS, eh, 1, hd(connect_headers("10.0.2.1:80"))) +
                       frame(NGHTTP2_RST_STREAM, 0, 1, u32(NGHTTP2_CANCEL)) +
                       frame(NGHTTP2_PING, 0, 0, "12345678") + frame(NGHTTP2_WINDOW_UPDATE, 0, 0, u32(1 << 20)) +
                       frame(NGHTTP2_GOAWAY, 0, 0, u32(0) + u32(NGHTTP2_NO_ERROR))});
  }
  {
    Deflater hd;
    const std::string block = hd(connect_headers("[fd00::2:1]:8080"));
    const std::size_t half = block.size() / 2;
    out.push_back({"continuation", std::string(1, '\3') + settings +
                                       frame(NGHTTP2_HEADERS, 0, 1, block.substr(0, half)) +
                                       frame(NGHTTP2_CONTINUATION, eh, 1, block.substr(half)) +
                                       frame(NGHTTP2_DATA, es, 1, "x")});
  }
  {
    Deflater hd;  // two streams, the second one's headers mostly from the dynamic table
    out.push_back({"two_streams_window", std::string(1, '\7') + settings +
                                             frame(NGHTTP2_HEADERS, eh, 1, hd(connect_headers("10.0.2.1:8080"))) +
                                             frame(NGHTTP2_HEADERS, eh, 3, hd(connect_headers("10.0.2.1:8080"))) +
                                             frame(NGHTTP2_WINDOW_UPDATE, 0, 1, u32(4096)) +
                                             frame(NGHTTP2_DATA, es, 3, std::string(300, 'b')) +
                                             frame(NGHTTP2_DATA, es, 1, std::string(20, 'a'))});
  }
  {
    Deflater hd;  // PADDED and PRIORITY flags on HEADERS, padding on DATA
    const std::string block = hd(connect_headers("10.0.2.1:8080"));
    const std::string headers = std::string(1, '\3') + u32(0) + std::string(1, '\x0f') + block + std::string(3, '\0');
    out.push_back({"padded_priority", std::string(1, '\7') + settings +
                                          frame(NGHTTP2_HEADERS, eh | NGHTTP2_FLAG_PADDED | NGHTTP2_FLAG_PRIORITY, 1, headers) +
                                          frame(NGHTTP2_PRIORITY, 0, 1, u32(0) + std::string(1, '\1')) +
                                          frame(NGHTTP2_DATA, es | NGHTTP2_FLAG_PADDED, 1, std::string("\2ab\0\0", 5))});
  }
  out.push_back({"preface_only", std::string(1, '\7')});
  out.push_back({"unknown_frame", std::string(1, '\7') + settings + frame(0xfa, 0xff, 7, "ignored")});
  out.push_back({"no_settings_first", std::string(1, '\7') + frame(NGHTTP2_PING, 0, 0, "12345678")});
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // "closing connection: ..." per malformed input
  fuzz::write_seeds_if_asked(seeds());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = kPieces[data[0] & 7];
  std::string wire(kPreface);
  wire.append(fuzz::as_text(data + 1, size - 1));

  h2::Settings settings;
  settings.ping_interval = std::chrono::milliseconds(0);

  asio::io_context io;
  auto written = std::make_shared<std::size_t>(0);
  auto count = std::make_shared<HandlerCount>();
  auto session = h2::Session::server(io.get_executor(), std::make_unique<FuzzTransport>(std::move(wire), piece, written),
                                     settings, make_handler(count), "fuzz");
  FUZZ_CHECK(session.has_value(), "Session::server: {}", session ? "" : session.error().context);

  bool ended = false;
  Result<void> outcome = ok();
  asio::co_spawn(io, [s = *session, &ended, &outcome]() -> asio::awaitable<void> {
        outcome = co_await s->run();
        ended = true;
      }, asio::detached);
  std::size_t rounds = 0;
  while (rounds < kMaxRounds && io.poll() > 0) ++rounds;

  FUZZ_CHECK(ended, "run() did not complete after the input ({} bytes) was consumed ({} rounds)", size, rounds);
  if (!outcome) fuzz::check_error(outcome.error(), {ErrorKind::Closed, ErrorKind::H2Protocol, ErrorKind::ResourceExhausted});
  FUZZ_CHECK(count->started == count->finished, "{} handlers started, {} finished", count->started, count->finished);
  FUZZ_CHECK(session->use_count() == 1, "the session is still held by {} owners after run()", session->use_count() - 1);
  const std::size_t limit = kWriteAllowance + kWriteFactor * size;
  FUZZ_CHECK(*written <= limit, "wrote {} bytes for {} bytes of input (limit {})", *written, size, limit);
  return 0;
}
