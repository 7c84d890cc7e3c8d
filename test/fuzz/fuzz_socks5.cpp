// fuzz_socks5: socks5::parse_greeting then socks5::parse_request (ztunnel/proxy/socks5.h) over the first
// bytes of a connection to ztunnel's 15080, consumed as socks5_handshake consumes them.
//
// Input: the connection's bytes. Each message is read the way read_message does it: ask the parser, read
// exactly up to NeedMore::total, ask again; the request starts where the greeting ended. Running out of
// input is the client's EOF.
//
// Invariants:
//  - NeedMore::total is more than what was given and within kMaxGreeting / kMaxRequest (else
//    read_message reports an Internal parser bug);
//  - Done::consumed is the bytes given, at most the input; the verdict on the whole remaining input is
//    the same as the incremental one (a parser looks at one message only);
//  - ParseError: Parse or Unsupported with a reason; a greeting refusal answers kMethodNoAcceptable or
//    nothing; a request refusal answers a ReplyCode other than Succeeded, nothing only for a bad VER;
//  - a parsed target re-encodes (a client's request, and build_reply's address for an IP target) and
//    parses back to the same target.
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "test/fuzz/fuzz_support.h"
#include "ztunnel/proxy/socks5.h"

namespace {

using namespace ambient;
using namespace ambient::ztunnel;
using Bytes = std::vector<std::uint8_t>;
namespace asio = boost::asio;

// A client's CONNECT request for `t` (RFC 1928 section 4): IPv4, IPv6 or DOMAINNAME.
Bytes encode_request(const Socks5Target& t) {
  Bytes out{socks5::kVersion, socks5::kCmdConnect, 0x00};
  if (const auto* name = std::get_if<std::string>(&t.host)) {
    out.push_back(socks5::kAtypDomain);
    out.push_back(static_cast<std::uint8_t>(name->size()));
    out.insert(out.end(), name->begin(), name->end());
  } else {
    const auto& ip = std::get<asio::ip::address>(t.host);
    if (ip.is_v4()) {
      out.push_back(socks5::kAtypIpv4);
      const auto b = ip.to_v4().to_bytes();
      out.insert(out.end(), b.begin(), b.end());
    } else {
      out.push_back(socks5::kAtypIpv6);
      const auto b = ip.to_v6().to_bytes();
      out.insert(out.end(), b.begin(), b.end());
    }
  }
  out.push_back(static_cast<std::uint8_t>(t.port >> 8));
  out.push_back(static_cast<std::uint8_t>(t.port & 0xff));
  return out;
}

// One message read like read_message: returns the final verdict, or nullopt at EOF (input exhausted).
// `used` is set to the bytes taken from `in`.
template <typename T>
std::optional<socks5::ParseResult<T>> read_message(std::span<const std::uint8_t> in,
                                                   socks5::ParseResult<T> (*parse)(std::span<const std::uint8_t>),
                                                   std::size_t bound, std::size_t& used) {
  std::size_t have = 0;
  for (;;) {
    auto verdict = parse(in.first(have));
    const auto* more = std::get_if<socks5::NeedMore>(&verdict);
    if (more == nullptr) {
      used = have;
      return verdict;
    }
    FUZZ_CHECK(more->total > have && more->total <= bound, "NeedMore{{{}}} with {} bytes given (bound {})", more->total,
               have, bound);
    if (more->total > in.size()) {
      used = have;
      return std::nullopt;  // EOF before the message is complete
    }
    have = more->total;
  }
}

template <typename T>
void check_same_verdict(const socks5::ParseResult<T>& incremental, const socks5::ParseResult<T>& whole) {
  FUZZ_CHECK(incremental.index() == whole.index(), "verdict on the whole input differs ({} vs {})", incremental.index(),
             whole.index());
  if (const auto* d = std::get_if<socks5::Done<T>>(&incremental)) {
    const auto& w = std::get<socks5::Done<T>>(whole);
    FUZZ_CHECK(d->consumed == w.consumed && d->value == w.value, "Done differs on the whole input ({} vs {} bytes)",
               d->consumed, w.consumed);
  } else if (const auto* e = std::get_if<socks5::ParseError>(&incremental)) {
    const auto& w = std::get<socks5::ParseError>(whole);
    FUZZ_CHECK(e->reply == w.reply && e->kind == w.kind, "ParseError differs on the whole input: {} / {}", e->reason,
               w.reason);
  }
}

void check_parse_error(const socks5::ParseError& e) {
  fuzz::check_error(Error{e.kind, e.reason, 0}, {ErrorKind::Parse, ErrorKind::Unsupported});
}

void check_target_round_trip(const Socks5Target& t) {
  const Bytes wire = encode_request(t);
  auto again = socks5::parse_request(wire);
  const auto* d = std::get_if<socks5::Done<Socks5Target>>(&again);
  FUZZ_CHECK(d != nullptr, "re-encoded request for {} does not parse", t.to_string());
  FUZZ_CHECK(d->consumed == wire.size() && d->value == t, "round trip of {} gave {}", t.to_string(), d->value.to_string());

  // build_reply writes BND.ADDR/BND.PORT in the request's layout: with the CMD byte set to CONNECT it is
  // a request for the same endpoint (a v4-mapped IPv6 address comes back as IPv4).
  const auto ep = t.endpoint();
  if (!ep) return;
  Bytes reply = socks5::build_reply(socks5::ReplyCode::Succeeded, *ep);
  reply[1] = socks5::kCmdConnect;
  auto back = socks5::parse_request(reply);
  const auto* r = std::get_if<socks5::Done<Socks5Target>>(&back);
  FUZZ_CHECK(r != nullptr && r->consumed == reply.size(), "build_reply for {} does not parse as a request", t.to_string());
  auto want = ep->address();
  if (want.is_v6() && want.to_v6().is_v4_mapped()) want = asio::ip::make_address_v4(asio::ip::v4_mapped, want.to_v6());
  FUZZ_CHECK(r->value.endpoint() == asio::ip::tcp::endpoint(want, ep->port()), "build_reply round trip of {} gave {}",
             t.to_string(), r->value.to_string());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string greeting("\x05\x01\x00", 3);
  auto request = [](const Socks5Target& t) {
    const Bytes b = encode_request(t);
    return std::string(b.begin(), b.end());
  };
  const Socks5Target v4{asio::ip::make_address("127.0.0.3"), 8080};
  const Socks5Target v6{asio::ip::make_address("fd00::1"), 443};
  const Socks5Target name{std::string("echo.demo.svc.cluster.local"), 80};
  std::string bind = request(v4);
  bind[1] = socks5::kCmdBind;
  fuzz::write_seeds_if_asked({
      {"ipv4", greeting + request(v4)},
      {"ipv6", greeting + request(v6)},
      {"domain", std::string("\x05\x02\x02\x00", 4) + request(name)},
      {"domain_ip_literal", greeting + request(Socks5Target{std::string("10.0.0.1"), 80}) + "payload"},
      {"no_acceptable_method", std::string("\x05\x01\x02", 3)},
      {"bind", greeting + bind},
      {"socks4", std::string("\x04\x01\x00\x50\x7f\x00\x00\x01", 8)},
      {"truncated", greeting + request(name).substr(0, 9)},
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);

  std::size_t used = 0;
  auto greeting = read_message<std::uint8_t>(in, &socks5::parse_greeting, socks5::kMaxGreeting, used);
  if (!greeting) return 0;
  check_same_verdict(*greeting, socks5::parse_greeting(in));
  if (const auto* e = std::get_if<socks5::ParseError>(&*greeting)) {
    check_parse_error(*e);
    FUZZ_CHECK(!e->reply || *e->reply == socks5::kMethodNoAcceptable, "greeting refused with METHOD {}", *e->reply);
    return 0;
  }
  const auto& g = std::get<socks5::Done<std::uint8_t>>(*greeting);
  FUZZ_CHECK(g.value == socks5::kMethodNoAuth && g.consumed == used && g.consumed <= size, "greeting Done {} of {}",
             g.consumed, size);

  const auto rest = in.subspan(g.consumed);
  auto request = read_message<Socks5Target>(rest, &socks5::parse_request, socks5::kMaxRequest, used);
  if (!request) return 0;
  check_same_verdict(*request, socks5::parse_request(rest));
  if (const auto* e = std::get_if<socks5::ParseError>(&*request)) {
    check_parse_error(*e);
    FUZZ_CHECK(e->reply ? *e->reply != static_cast<std::uint8_t>(socks5::ReplyCode::Succeeded) && *e->reply <= 0x08
                        : !rest.empty() && rest[0] != socks5::kVersion,
               "request refused with REP {}: {}", e->reply.value_or(0xff), e->reason);
    return 0;
  }
  const auto& r = std::get<socks5::Done<Socks5Target>>(*request);
  FUZZ_CHECK(r.consumed == used && r.consumed <= rest.size(), "request Done {} of {}", r.consumed, rest.size());
  if (const auto* name = std::get_if<std::string>(&r.value.host)) {
    FUZZ_CHECK(!name->empty() && name->size() <= 255, "hostname of {} bytes", name->size());
  }
  check_target_round_trip(r.value);
  return 0;
}
