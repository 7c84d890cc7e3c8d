#include "ztunnel/proxy/socks5.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

namespace ambient::ztunnel {

namespace asio = boost::asio;
using asio::ip::tcp;

std::optional<tcp::endpoint> Socks5Target::endpoint() const {
  if (const auto* ip = std::get_if<asio::ip::address>(&host)) return tcp::endpoint(*ip, port);
  return std::nullopt;
}

std::string Socks5Target::to_string() const {
  if (const auto* name = std::get_if<std::string>(&host)) return fmt::format("{}:{}", *name, port);
  const auto& ip = std::get<asio::ip::address>(host);
  if (ip.is_v6()) return fmt::format("[{}]:{}", ip.to_string(), port);
  return fmt::format("{}:{}", ip.to_string(), port);
}

namespace socks5 {

std::string_view to_string(ReplyCode code) noexcept {
  switch (code) {
    case ReplyCode::Succeeded: return "succeeded";
    case ReplyCode::GeneralFailure: return "general SOCKS server failure";
    case ReplyCode::NotAllowedByRuleset: return "connection not allowed by ruleset";
    case ReplyCode::NetworkUnreachable: return "network unreachable";
    case ReplyCode::HostUnreachable: return "host unreachable";
    case ReplyCode::ConnectionRefused: return "connection refused";
    case ReplyCode::TtlExpired: return "TTL expired";
    case ReplyCode::CommandNotSupported: return "command not supported";
    case ReplyCode::AddressTypeNotSupported: return "address type not supported";
  }
  return "unknown";
}

namespace {

// Every request is at least VER CMD RSV ATYP plus one address byte (the domain length for ATYP 3).
constexpr std::size_t kRequestPrefix = 5;

ParseError refuse(std::optional<ReplyCode> reply, ErrorKind kind, std::string reason) {
  std::optional<std::uint8_t> rep;
  if (reply) rep = static_cast<std::uint8_t>(*reply);
  return ParseError{rep, kind, std::move(reason)};
}

std::string_view command_name(std::uint8_t cmd) {
  switch (cmd) {
    case kCmdBind: return "BIND";
    case kCmdUdpAssociate: return "UDP ASSOCIATE";
    default: return "unknown";
  }
}

bool is_hostname_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_';
}

bool is_ip_literal_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

// DST.ADDR of ATYP 3: an IP literal (some clients send those as names) or a hostname.
std::variant<asio::ip::address, std::string, ParseError> parse_domain(std::string_view name) {
  if (name.empty()) return refuse(ReplyCode::GeneralFailure, ErrorKind::Parse, "empty domain name");
  if (std::all_of(name.begin(), name.end(), is_ip_literal_char)) {
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(std::string(name), ec);
    if (!ec) return ip;
  }
  auto bad = std::find_if_not(name.begin(), name.end(), is_hostname_char);
  if (bad != name.end()) {
    return refuse(ReplyCode::GeneralFailure, ErrorKind::Parse,
                  fmt::format("domain name has byte 0x{:02x} at offset {}, not a hostname character",
                              static_cast<std::uint8_t>(*bad), bad - name.begin()));
  }
  return std::string(name);
}

}  // namespace

ParseResult<std::uint8_t> parse_greeting(std::span<const std::uint8_t> in) {
  if (in.empty()) return NeedMore{2};
  if (in[0] != kVersion) {
    return refuse(std::nullopt, ErrorKind::Parse,
                  fmt::format("greeting version {} (only SOCKS5 is supported)", in[0]));
  }
  if (in.size() < 2) return NeedMore{2};
  const std::size_t total = 2 + std::size_t{in[1]};
  if (in.size() < total) return NeedMore{total};
  const auto methods = in.subspan(2, total - 2);
  if (std::find(methods.begin(), methods.end(), kMethodNoAuth) == methods.end()) {
    std::string offered;
    for (auto m : methods) offered += fmt::format("{}{:02x}", offered.empty() ? "" : " ", m);
    return ParseError{kMethodNoAcceptable, ErrorKind::Unsupported,
                      fmt::format("no acceptable authentication method (offered: [{}], only 00 no-auth)", offered)};
  }
  return Done<std::uint8_t>{kMethodNoAuth, total};
}

ParseResult<Socks5Target> parse_request(std::span<const std::uint8_t> in) {
  if (in.empty()) return NeedMore{kRequestPrefix};
  if (in[0] != kVersion) {
    return refuse(ReplyCode::GeneralFailure, ErrorKind::Parse, fmt::format("request version {}, want 5", in[0]));
  }
  if (in.size() < 4) return NeedMore{kRequestPrefix};

  // The length follows from ATYP (and the domain length byte): wait for all of it before judging.
  const std::uint8_t atyp = in[3];
  std::size_t addr_len = 0;  // DST.ADDR bytes, including the domain's length byte
  switch (atyp) {
    case kAtypIpv4: addr_len = 4; break;
    case kAtypIpv6: addr_len = 16; break;
    case kAtypDomain:
      if (in.size() < kRequestPrefix) return NeedMore{kRequestPrefix};
      addr_len = 1 + std::size_t{in[4]};
      break;
    default:
      return refuse(ReplyCode::AddressTypeNotSupported, ErrorKind::Unsupported,
                    fmt::format("address type {} not supported (1 IPv4, 3 domain, 4 IPv6)", atyp));
  }
  const std::size_t total = 4 + addr_len + 2;
  if (in.size() < total) return NeedMore{total};

  if (in[1] != kCmdConnect) {
    return refuse(ReplyCode::CommandNotSupported, ErrorKind::Unsupported,
                  fmt::format("command {} ({}) not supported, only CONNECT", in[1], command_name(in[1])));
  }
  if (in[2] != 0) {
    return refuse(ReplyCode::GeneralFailure, ErrorKind::Parse, fmt::format("reserved byte is {}, want 0", in[2]));
  }

  Socks5Target target;
  const auto addr = in.subspan(4, addr_len);
  switch (atyp) {
    case kAtypIpv4: {
      asio::ip::address_v4::bytes_type b;
      std::copy(addr.begin(), addr.end(), b.begin());
      target.host = asio::ip::address(asio::ip::address_v4(b));
      break;
    }
    case kAtypIpv6: {
      asio::ip::address_v6::bytes_type b;
      std::copy(addr.begin(), addr.end(), b.begin());
      target.host = asio::ip::address(asio::ip::address_v6(b));
      break;
    }
    default: {
      std::string_view name(reinterpret_cast<const char*>(addr.data()) + 1, addr_len - 1);
      auto parsed = parse_domain(name);
      if (auto* e = std::get_if<ParseError>(&parsed)) return std::move(*e);
      if (auto* ip = std::get_if<asio::ip::address>(&parsed)) {
        target.host = *ip;
      } else {
        target.host = std::move(std::get<std::string>(parsed));
      }
      break;
    }
  }
  target.port = static_cast<std::uint16_t>((in[total - 2] << 8) | in[total - 1]);
  return Done<Socks5Target>{std::move(target), total};
}

std::array<std::uint8_t, 2> build_method_reply(std::uint8_t method) { return {kVersion, method}; }

std::vector<std::uint8_t> build_reply(ReplyCode code, const tcp::endpoint& bound) {
  std::vector<std::uint8_t> out{kVersion, static_cast<std::uint8_t>(code), 0x00};
  asio::ip::address ip = bound.address();
  if (ip.is_v6() && ip.to_v6().is_v4_mapped()) {
    ip = asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
  }
  if (ip.is_v4()) {
    out.push_back(kAtypIpv4);
    const auto b = ip.to_v4().to_bytes();
    out.insert(out.end(), b.begin(), b.end());
  } else {
    out.push_back(kAtypIpv6);
    const auto b = ip.to_v6().to_bytes();
    out.insert(out.end(), b.begin(), b.end());
  }
  out.push_back(static_cast<std::uint8_t>(bound.port() >> 8));
  out.push_back(static_cast<std::uint8_t>(bound.port() & 0xff));
  return out;
}

}  // namespace socks5

namespace {

std::string peer_string(const net::TcpStream& stream) {
  const auto& ep = stream.peer();
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

// Reads one message into `buf`, asking the parser after every read how long the message is, and never
// reading past it. Returns the parser's final verdict (Done or ParseError), or the I/O error / EOF.
template <typename T>
asio::awaitable<Result<socks5::ParseResult<T>>> read_message(net::TcpStream& stream, std::span<std::uint8_t> buf,
                                                             socks5::ParseResult<T> (*parse)(std::span<const std::uint8_t>),
                                                             std::string_view what) {
  std::size_t have = 0;
  for (;;) {
    socks5::ParseResult<T> verdict = parse(std::span<const std::uint8_t>(buf.data(), have));
    const auto* more = std::get_if<socks5::NeedMore>(&verdict);
    if (more == nullptr) co_return verdict;
    if (more->total <= have || more->total > buf.size()) {  // a parser bug, never the peer's fault
      co_return errorf(ErrorKind::Internal, "socks5 {} from {}: parser asked for {} bytes with {} read", what,
                       peer_string(stream), more->total, have);
    }
    auto n = co_await stream.read_some(buf.subspan(have, more->total - have));
    if (!n) co_return std::move(n).error();
    if (*n == 0) {
      co_return errorf(ErrorKind::Closed, "socks5 {} from {}: client closed after {} of at least {} bytes", what,
                       peer_string(stream), have, more->total);
    }
    have += *n;
  }
}

Error refused(const net::TcpStream& stream, std::string_view what, const socks5::ParseError& e) {
  return Error{e.kind, fmt::format("socks5 {} from {}: {}", what, peer_string(stream), e.reason), 0};
}

}  // namespace

asio::awaitable<Result<Socks5Target>> socks5_handshake(net::TcpStream& stream) {
  std::array<std::uint8_t, std::max(socks5::kMaxGreeting, socks5::kMaxRequest)> buf{};

  auto greeting = co_await read_message<std::uint8_t>(stream, buf, &socks5::parse_greeting, "greeting");
  if (!greeting) co_return std::move(greeting).error();
  if (const auto* e = std::get_if<socks5::ParseError>(&*greeting)) {
    if (e->reply) {
      const auto answer = socks5::build_method_reply(*e->reply);
      (void)co_await stream.write_all(answer);  // best effort: the refusal is the error we report
    }
    co_return refused(stream, "greeting", *e);
  }
  const auto method = socks5::build_method_reply(std::get<socks5::Done<std::uint8_t>>(*greeting).value);
  if (auto w = co_await stream.write_all(method); !w) co_return std::move(w).error();

  auto request = co_await read_message<Socks5Target>(stream, buf, &socks5::parse_request, "request");
  if (!request) co_return std::move(request).error();
  if (const auto* e = std::get_if<socks5::ParseError>(&*request)) {
    if (e->reply) {
      const auto answer = socks5::build_reply(static_cast<socks5::ReplyCode>(*e->reply));
      (void)co_await stream.write_all(answer);
    }
    co_return refused(stream, "request", *e);
  }
  co_return std::move(std::get<socks5::Done<Socks5Target>>(*request).value);
}

asio::awaitable<Result<void>> send_socks5_reply(net::TcpStream& stream, socks5::ReplyCode code, tcp::endpoint bound) {
  const auto reply = socks5::build_reply(code, bound);
  co_return co_await stream.write_all(reply);
}

}  // namespace ambient::ztunnel
