#pragma once
// SOCKS5 server side (RFC 1928), ztunnel's subset (reference ztunnel.md 3.9, listener 15080):
//   - method negotiation: NO AUTHENTICATION REQUIRED (0x00) only; a client that does not offer it gets
//     `05 FF` and the connection is closed;
//   - request: CONNECT (0x01) only, ATYP IPv4 (0x01), DOMAINNAME (0x03) or IPv6 (0x04).
//
// Two layers:
//   - socks5::parse_greeting / parse_request: sans-I/O parsers over the bytes received so far. They are
//     stateless (call again with the longer buffer), look only at the bytes of one message, and say
//     how long the message is at least (NeedMore::total) so the caller reads exactly that much: no byte
//     past the message is ever taken from the socket, and no message is longer than kMaxGreeting /
//     kMaxRequest. Errors are reported only once a message's length is known and all of it has been
//     seen (except a bad VER or an unknown ATYP, where the length is unknown), so the caller can answer
//     before closing without unread bytes turning the close into a RST that eats the answer.
//   - socks5_handshake / send_socks5_reply: thin coroutines that drive the parsers over a TcpStream.
//     The final reply is the caller's: ztunnel answers only after the upstream connect outcome.
//     No deadline here: the caller composes one (cancel_after), DESIGN.md H3.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"
#include "common/net/tcp_stream.h"

namespace ambient::ztunnel {

// Where the client asked to connect: an IP (ATYP 1 or 4, or a DOMAINNAME that is an IP literal) or a
// hostname (ATYP 3, resolved later through the DNS proxy's resolver), plus DST.PORT.
struct Socks5Target {
  std::variant<boost::asio::ip::address, std::string> host;
  std::uint16_t port = 0;

  bool is_hostname() const noexcept { return std::holds_alternative<std::string>(host); }
  // The IP endpoint, or nullopt for a hostname target.
  std::optional<boost::asio::ip::tcp::endpoint> endpoint() const;
  // "10.0.0.1:80", "[2001:db8::1]:443", "example.com:8080".
  std::string to_string() const;

  bool operator==(const Socks5Target&) const = default;
};

namespace socks5 {

inline constexpr std::uint8_t kVersion = 0x05;

// Authentication methods (RFC 1928 section 3).
inline constexpr std::uint8_t kMethodNoAuth = 0x00;
inline constexpr std::uint8_t kMethodNoAcceptable = 0xFF;

// Commands and address types (RFC 1928 section 4).
inline constexpr std::uint8_t kCmdConnect = 0x01;
inline constexpr std::uint8_t kCmdBind = 0x02;
inline constexpr std::uint8_t kCmdUdpAssociate = 0x03;
inline constexpr std::uint8_t kAtypIpv4 = 0x01;
inline constexpr std::uint8_t kAtypDomain = 0x03;
inline constexpr std::uint8_t kAtypIpv6 = 0x04;

// Largest messages: greeting VER NMETHODS METHODS[1..255]; request VER CMD RSV ATYP, then at most a
// 1-byte length and 255 domain bytes, then DST.PORT.
inline constexpr std::size_t kMaxGreeting = 2 + 255;
inline constexpr std::size_t kMaxRequest = 4 + 1 + 255 + 2;

// REP field of the reply (RFC 1928 section 6).
enum class ReplyCode : std::uint8_t {
  Succeeded = 0x00,
  GeneralFailure = 0x01,           // also: malformed request (bad VER/RSV, empty or non-hostname domain)
  NotAllowedByRuleset = 0x02,      // e.g. authorization denied
  NetworkUnreachable = 0x03,
  HostUnreachable = 0x04,          // e.g. the hostname did not resolve
  ConnectionRefused = 0x05,
  TtlExpired = 0x06,               // e.g. upstream connect timed out
  CommandNotSupported = 0x07,      // BIND, UDP ASSOCIATE, anything but CONNECT
  AddressTypeNotSupported = 0x08,  // ATYP other than 1, 3, 4
};

std::string_view to_string(ReplyCode code) noexcept;

// The message is incomplete; it is at least `total` bytes long (> bytes given, <= the kMax* bound).
struct NeedMore {
  std::size_t total = 0;
};
// The message parsed; it was the first `consumed` bytes of the input.
template <typename T>
struct Done {
  T value;
  std::size_t consumed = 0;
};
// The message is refused.
struct ParseError {
  // What to answer before closing, or nullopt to close without answering (not SOCKS5 at all):
  // for a greeting, the METHOD byte of `05 METHOD` (always kMethodNoAcceptable);
  // for a request, the REP code (a ReplyCode) of build_reply().
  std::optional<std::uint8_t> reply;
  ErrorKind kind = ErrorKind::Parse;  // Parse: malformed; Unsupported: valid but not in our subset
  std::string reason;
};
template <typename T>
using ParseResult = std::variant<NeedMore, Done<T>, ParseError>;

// Greeting: VER(5) NMETHODS METHODS. Done's value is the method we select (kMethodNoAuth).
ParseResult<std::uint8_t> parse_greeting(std::span<const std::uint8_t> in);

// Request: VER(5) CMD RSV(0) ATYP DST.ADDR DST.PORT. A DOMAINNAME must be 1..255 hostname characters
// (letters, digits, '-', '.', '_'), or an IPv4/IPv6 literal, which becomes an IP target.
ParseResult<Socks5Target> parse_request(std::span<const std::uint8_t> in);

// `05 METHOD`.
std::array<std::uint8_t, 2> build_method_reply(std::uint8_t method);

// `05 REP 00 ATYP BND.ADDR BND.PORT` (10 bytes for IPv4, 22 for IPv6). A v4-mapped IPv6 address is
// sent as IPv4. The default bound endpoint is 0.0.0.0:0, which clients ignore.
std::vector<std::uint8_t> build_reply(ReplyCode code, const boost::asio::ip::tcp::endpoint& bound = {});

}  // namespace socks5

// Negotiates the method and reads the request on `stream`. Protocol errors are answered (`05 FF`, or a
// reply with the matching REP code) and returned as Parse/Unsupported; EOF mid-message is Closed; I/O
// errors pass through. On success nothing has been answered yet to the request: the caller connects
// upstream, then calls send_socks5_reply() with the outcome. `stream` must outlive the call.
boost::asio::awaitable<Result<Socks5Target>> socks5_handshake(net::TcpStream& stream);

// Sends the request's reply (RFC 1928 section 6). `bound` is the address the server uses to reach the
// target (0.0.0.0:0 when there is none to tell).
boost::asio::awaitable<Result<void>> send_socks5_reply(net::TcpStream& stream, socks5::ReplyCode code,
                                                       boost::asio::ip::tcp::endpoint bound = {});

}  // namespace ambient::ztunnel
