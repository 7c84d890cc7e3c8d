// The parsers on Boost.Beast's basic_parser: Beast tokenises (request/status line, fields, chunks) and
// enforces most of RFC 9112's grammar; this file adds the proxy's rules on top (limits across calls,
// obs-fold, request smuggling, Transfer-Encoding, the status to answer) and the bounded body buffer.
#include "waypoint/http1/parser.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/buffer.hpp>

#include "common/base/ascii.h"
#include "common/base/beast_http_parser.h"

namespace ambient::waypoint::http1 {

namespace bhttp = boost::beast::http;
using boost::beast::error_code;
using BeastStringView = boost::beast::string_view;

namespace {

std::string_view sv(BeastStringView s) { return {s.data(), s.size()}; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "HTTP/d.d": the shape of a version Beast understands (then bad_version means "not 1.0/1.1": 505).
bool is_version_token(std::string_view v) {
  return v.size() == 8 && v.substr(0, 5) == "HTTP/" && is_digit(v[5]) && v[6] == '.' && is_digit(v[7]);
}

// The status for a Beast error found on a start line in `raw` (the bytes from the start of the line).
int start_line_status(const error_code& ec, std::string_view raw, bool is_request) {
  if (ec != bhttp::error::bad_version) return 400;
  const auto eol = raw.find('\r');
  std::string_view line = raw.substr(0, eol);
  std::string_view version;
  if (is_request) {
    const auto sp = line.rfind(' ');
    version = sp == std::string_view::npos ? line : line.substr(sp + 1);
  } else {
    version = line.substr(0, line.find(' '));
  }
  if (!is_version_token(version)) return 400;
  return (version == "HTTP/1.0" || version == "HTTP/1.1") ? 400 : 505;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Error parse_error(int status, std::string reason) {
  const ErrorKind kind = (status == 501 || status == 505) ? ErrorKind::Unsupported : ErrorKind::Parse;
  return make_error(kind, fmt::format("HTTP/1.1: {} ({})", reason, status), status);
}

int answer_status(const Error& e) noexcept {
  if ((e.kind == ErrorKind::Parse || e.kind == ErrorKind::Unsupported) && e.code >= 400 && e.code <= 599) return e.code;
  return 0;
}

namespace detail {

template <bool isRequest>
class Engine;

// Beast's half: forwards every callback to the Engine.
template <bool isRequest>
class BeastParser final : public bhttp::basic_parser<isRequest> {
 public:
  explicit BeastParser(Engine<isRequest>& e) : e_(e) {}

 private:
  void on_request_impl(bhttp::verb, BeastStringView method, BeastStringView target, int version,
                       error_code& ec) override {
    e_.on_request(sv(method), sv(target), version, ec);
  }
  void on_response_impl(int code, BeastStringView reason, int version, error_code& ec) override {
    e_.on_response(code, sv(reason), version, ec);
  }
  void on_field_impl(bhttp::field, BeastStringView name, BeastStringView value, error_code& ec) override {
    e_.on_field(sv(name), sv(value), ec);
  }
  void on_header_impl(error_code& ec) override { e_.on_header(*this, ec); }
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(BeastStringView body, error_code&) override { return e_.on_body(sv(body)); }
  void on_chunk_header_impl(std::uint64_t size, BeastStringView, error_code&) override {
    if (size == 0) e_.in_trailers_ = true;  // the trailer fields follow (chunk extensions are ignored)
  }
  std::size_t on_chunk_body_impl(std::uint64_t, BeastStringView body, error_code&) override {
    return e_.on_body(sv(body));
  }
  void on_finish_impl(error_code&) override { e_.done_ = true; }

  Engine<isRequest>& e_;
};

template <bool isRequest>
class Engine {
 public:
  using Head = std::conditional_t<isRequest, RequestHead, ResponseHead>;

  explicit Engine(Limits limits) : limits_(limits) { reset(); }

  void reset() {
    beast_.emplace(*this);
    const auto cap = static_cast<std::size_t>(std::numeric_limits<std::uint32_t>::max());
    beast_->header_limit(static_cast<std::uint32_t>(std::min(limits_.max_header_bytes, cap)));
    beast_->body_limit(boost::none);
    head_ = Head{};
    trailers_.clear();
    body_.clear();
    body_off_ = 0;
    header_bytes_ = 0;
    fields_ = 0;
    scan_pos_ = line_start_ = 0;
    scan_done_ = false;
    head_done_ = done_ = in_trailers_ = saw_te_ = saw_cl_ = started_ = head_request_ = start_line_done_ = false;
    status_ = 0;
    reason_.clear();
    error_.reset();
  }

  void set_head_request(bool v) {
    head_request_ = v;
    if (!started_) beast_->skip(v);
  }

  Result<std::size_t> feed(std::span<const std::uint8_t> in) {
    if (error_) return *error_;
    if (!head_done_ && !scan_done_) {
      if (auto bad = scan_line_ends(in); !bad) return std::move(bad).error();
    }
    std::size_t total = 0;
    while (total < in.size() && !done_) {
      if (head_done_ && buffered() >= kBodyBufferLimit) break;  // backpressure: drain body() first
      const bool was_head_done = head_done_;
      const char* p = reinterpret_cast<const char*>(in.data()) + total;
      const std::size_t n_in = in.size() - total;
      cur_begin_ = p;
      cur_end_ = p + n_in;
      error_code ec;
      const std::size_t n = beast_->put(boost::asio::const_buffer(p, n_in), ec);
      started_ = true;
      total += n;
      if (!was_head_done) {
        header_bytes_ += n;
        scan_pos_ -= std::min(scan_pos_, n);
        line_start_ -= std::min(line_start_, n);
      }
      if (ec == bhttp::error::need_more) {
        const std::size_t pending = in.size() - total;
        if (!head_done_ && header_bytes_ + pending >= limits_.max_header_bytes)
          return fail(431, fmt::format("head longer than {} bytes", limits_.max_header_bytes));
        if (head_done_ && pending >= limits_.max_header_bytes)
          return fail(431, fmt::format("chunk line or trailers longer than {} bytes", limits_.max_header_bytes));
        break;
      }
      if (ec) {
        if (status_ != 0) return fail(status_, reason_);
        if (ec == bhttp::error::header_limit)
          return fail(431, fmt::format("head longer than {} bytes", limits_.max_header_bytes));
        const int status = (!was_head_done && !start_line_done_) ? start_line_status(ec, std::string_view(p, n_in), isRequest) : 400;
        return fail(status, ec.message());
      }
      if (!was_head_done && head_done_ && header_bytes_ > limits_.max_header_bytes)
        return fail(431, fmt::format("head longer than {} bytes", limits_.max_header_bytes));
      if (n == 0) break;
    }
    return total;
  }

  Result<void> feed_eof() {
    if (error_) return *error_;
    if (done_) return ok();
    if (!head_done_) return make_error(ErrorKind::Closed, started_ ? "HTTP/1.1: EOF inside the head" : "HTTP/1.1: EOF before a message");
    error_code ec;
    beast_->put_eof(ec);
    if (ec || !done_) return make_error(ErrorKind::Closed, "HTTP/1.1: EOF inside the body");
    return ok();
  }

  bool started() const { return started_; }
  bool head_done() const { return head_done_; }
  const Head& head() const { return head_; }
  bool message_done() const { return done_; }
  const h2::Headers& trailers() const { return trailers_; }

  std::span<const std::uint8_t> body() const { return {body_.data() + body_off_, body_.size() - body_off_}; }
  void consume_body(std::size_t n) {
    body_off_ += std::min(n, body_.size() - body_off_);
    if (body_off_ == body_.size()) {
      body_.clear();
      body_off_ = 0;
    }
  }

  // --- callbacks (from BeastParser) ---

  void on_request(std::string_view method, std::string_view target, int version, error_code& ec) {
    start_line_done_ = true;
    if constexpr (isRequest) {
      if (target.size() > limits_.max_target)
        return reject(414, fmt::format("request-target longer than {} bytes", limits_.max_target), ec);
      head_.method.assign(method);
      head_.target.assign(target);
      head_.version = static_cast<unsigned>(version);
    } else {
      reject(400, "request line where a status line was expected", ec);
    }
  }

  void on_response(int code, std::string_view reason, int version, error_code& ec) {
    start_line_done_ = true;
    if constexpr (!isRequest) {
      if (code < 100) return reject(400, fmt::format("status code {}", code), ec);
      head_.status = code;
      head_.reason.assign(reason);
      head_.version = static_cast<unsigned>(version);
    } else {
      reject(400, "status line where a request line was expected", ec);
    }
  }

  void on_field(std::string_view name, std::string_view value, error_code& ec) {
    // obs-fold: Beast unfolds it; we refuse it (RFC 9112 5.2 lets a proxy reject it with 400). The raw
    // field starts at name.data(), in the current input; the byte after its first CRLF tells.
    if (name.data() >= cur_begin_ && name.data() < cur_end_) {
      const char* p = name.data();
      while (p + 2 < cur_end_ && !(p[0] == '\r' && p[1] == '\n')) ++p;
      if (p + 2 < cur_end_ && (p[2] == ' ' || p[2] == '\t'))
        return reject(400, "obsolete line folding in a header", ec);
    }
    if (value.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos)
      return reject(400, "NUL, CR or LF in a header value", ec);
    if (++fields_ > limits_.max_headers)
      return reject(431, fmt::format("more than {} {}", limits_.max_headers, in_trailers_ ? "trailers" : "headers"), ec);
    std::string lower = ascii_lower(name);
    if (!in_trailers_) {
      if (lower == "transfer-encoding") saw_te_ = true;
      if (lower == "content-length") saw_cl_ = true;
      head_.headers.push_back(h2::Header{std::move(lower), std::string(value)});
    } else {
      trailers_.push_back(h2::Header{std::move(lower), std::string(value)});
    }
  }

  void on_header(BeastParser<isRequest>& b, error_code& ec) {
    fields_ = 0;  // trailers are counted on their own
    // Request smuggling (RFC 9112 6.1): a proxy must not forward a message with both.
    if (saw_te_ && saw_cl_) return reject(400, "both Content-Length and Transfer-Encoding", ec);
    bool has_body = true;
    if constexpr (!isRequest) {
      const int s = head_.status;
      has_body = !head_request_ && s / 100 != 1 && s != 204 && s != 304;
    }
    if (saw_te_ && has_body && !b.chunked())
      return reject(501, "Transfer-Encoding other than a final \"chunked\"", ec);
    head_.keep_alive = b.keep_alive();
    head_.chunked = b.chunked();
    if (auto cl = b.content_length()) head_.content_length = *cl;
    if constexpr (isRequest) {
      head_.upgrade = b.upgrade() && head_.header("upgrade").has_value();
      const auto expect = head_.header("expect");
      head_.expect_continue = expect && ascii_iequals(trim_ows(*expect), "100-continue");
    }
    head_done_ = true;
  }

  std::size_t on_body(std::string_view data) {
    const std::size_t have = buffered();
    if (have >= kBodyBufferLimit) return 0;
    const std::size_t n = std::min(data.size(), kBodyBufferLimit - have);
    if (body_off_ > 0 && body_off_ >= body_.size() / 2) {  // compact before growing
      body_.erase(body_.begin(), body_.begin() + static_cast<std::ptrdiff_t>(body_off_));
      body_off_ = 0;
    }
    const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
    body_.insert(body_.end(), p, p + n);
    return n;
  }

  bool in_trailers_ = false;
  bool done_ = false;

 private:
  std::size_t buffered() const { return body_.size() - body_off_; }

  // Beast waits for CRLF CRLF before it parses a head it got in pieces, so a head with bare LF line ends
  // would only ever "need more": refuse it (400) as soon as a bare LF shows up. Scans each head byte once
  // (scan_pos_ and line_start_ are relative to the first unconsumed byte; Beast consumes whole lines).
  Result<void> scan_line_ends(std::span<const std::uint8_t> in) {
    std::size_t i = std::min(scan_pos_, in.size());
    for (; i < in.size(); ++i) {
      if (in[i] != '\n') continue;
      if (i == 0 || in[i - 1] != '\r') return fail(400, "bare LF in the head");
      if (i - 1 == line_start_) {  // the empty line: the head ends here, body bytes follow
        scan_done_ = true;
        break;
      }
      line_start_ = i + 1;
    }
    scan_pos_ = i;
    return ok();
  }

  void reject(int status, std::string reason, error_code& ec) {
    status_ = status;
    reason_ = std::move(reason);
    ec = bhttp::error::bad_value;  // any error stops Beast; status_ says which
  }

  Error fail(int status, std::string reason) {
    error_ = parse_error(status, std::move(reason));
    return *error_;
  }

  Limits limits_;
  std::optional<BeastParser<isRequest>> beast_;
  Head head_{};
  h2::Headers trailers_;
  std::vector<std::uint8_t> body_;
  std::size_t body_off_ = 0;
  std::size_t header_bytes_ = 0;  // head bytes consumed so far (Beast's header_limit is per put() call)
  std::size_t fields_ = 0;
  const char* cur_begin_ = nullptr;  // the input of the current put()
  const char* cur_end_ = nullptr;
  std::size_t scan_pos_ = 0;    // scan_line_ends(): next byte to look at
  std::size_t line_start_ = 0;  // scan_line_ends(): where the current line starts
  bool scan_done_ = false;
  bool head_done_ = false;
  bool start_line_done_ = false;
  bool saw_te_ = false;
  bool saw_cl_ = false;
  bool started_ = false;
  bool head_request_ = false;
  int status_ = 0;          // set by reject()
  std::string reason_;
  std::optional<Error> error_;  // sticky
};

}  // namespace detail

// --- RequestParser / ResponseParser: thin forwarding ---

RequestParser::RequestParser(Limits limits) : e_(std::make_unique<detail::Engine<true>>(limits)) {}
RequestParser::~RequestParser() = default;
RequestParser::RequestParser(RequestParser&&) noexcept = default;
RequestParser& RequestParser::operator=(RequestParser&&) noexcept = default;
Result<std::size_t> RequestParser::feed(std::span<const std::uint8_t> in) { return e_->feed(in); }
Result<void> RequestParser::feed_eof() { return e_->feed_eof(); }
bool RequestParser::started() const { return e_->started(); }
bool RequestParser::head_done() const { return e_->head_done(); }
const RequestHead& RequestParser::head() const { return e_->head(); }
std::span<const std::uint8_t> RequestParser::body() const { return e_->body(); }
void RequestParser::consume_body(std::size_t n) { e_->consume_body(n); }
bool RequestParser::message_done() const { return e_->message_done(); }
const h2::Headers& RequestParser::trailers() const { return e_->trailers(); }
void RequestParser::reset() { e_->reset(); }

ResponseParser::ResponseParser(Limits limits) : e_(std::make_unique<detail::Engine<false>>(limits)) {}
ResponseParser::~ResponseParser() = default;
ResponseParser::ResponseParser(ResponseParser&&) noexcept = default;
ResponseParser& ResponseParser::operator=(ResponseParser&&) noexcept = default;
void ResponseParser::set_head_request(bool head_request) { e_->set_head_request(head_request); }
Result<std::size_t> ResponseParser::feed(std::span<const std::uint8_t> in) { return e_->feed(in); }
Result<void> ResponseParser::feed_eof() { return e_->feed_eof(); }
bool ResponseParser::started() const { return e_->started(); }
bool ResponseParser::head_done() const { return e_->head_done(); }
const ResponseHead& ResponseParser::head() const { return e_->head(); }
std::span<const std::uint8_t> ResponseParser::body() const { return e_->body(); }
void ResponseParser::consume_body(std::size_t n) { e_->consume_body(n); }
bool ResponseParser::message_done() const { return e_->message_done(); }
const h2::Headers& ResponseParser::trailers() const { return e_->trailers(); }
void ResponseParser::reset() { e_->reset(); }

}  // namespace ambient::waypoint::http1
