#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include "test/support/run_coro.h"
#include "ztunnel/proxy/socks5.h"

// GCC PR 109224: false -Wmismatched-new-delete on Asio coroutine frames, depending on inlining.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

using namespace ambient;
using namespace ambient::ztunnel;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using socks5::ReplyCode;

namespace {

using Bytes = std::vector<std::uint8_t>;

// "05 01 00" -> {0x05, 0x01, 0x00}
Bytes hex(std::string_view s) {
  Bytes out;
  int hi = -1;
  for (char c : s) {
    int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (v < 0) continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  return out;
}

Bytes str(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// A DOMAINNAME request (CONNECT unless `cmd` says otherwise) for `name`:`port`.
Bytes domain_request(std::string_view name, std::uint16_t port, std::uint8_t cmd = socks5::kCmdConnect) {
  Bytes out;
  out.reserve(4 + 1 + name.size() + 2);
  for (std::uint8_t b : {std::uint8_t{0x05}, cmd, std::uint8_t{0x00}, socks5::kAtypDomain}) out.push_back(b);
  out.push_back(static_cast<std::uint8_t>(name.size()));
  for (char c : name) out.push_back(static_cast<std::uint8_t>(c));
  out.push_back(static_cast<std::uint8_t>(port >> 8));
  out.push_back(static_cast<std::uint8_t>(port & 0xff));
  return out;
}

std::string long_name(std::size_t n) {  // "aaa...a.example"-like, n bytes, valid hostname characters
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s.push_back((i % 64 == 63) ? '.' : static_cast<char>('a' + i % 26));
  return s;
}

Socks5Target ip_target(std::string_view ip, std::uint16_t port) {
  return Socks5Target{asio::ip::make_address(std::string(ip)), port};
}
Socks5Target name_target(std::string_view name, std::uint16_t port) {
  return Socks5Target{std::string(name), port};
}

// Every proper prefix must ask for more, without asking past the message or the protocol's bound;
// the verdict must not change once the message is complete (extra bytes are not consumed).
template <typename T>
void check_prefixes(socks5::ParseResult<T> (*parse)(std::span<const std::uint8_t>), const Bytes& msg,
                    std::size_t decided_at, std::size_t max_message) {
  for (std::size_t k = 0; k < decided_at; ++k) {
    CAPTURE(k);
    auto r = parse(std::span<const std::uint8_t>(msg.data(), k));
    const auto* more = std::get_if<socks5::NeedMore>(&r);
    REQUIRE(more != nullptr);
    CHECK(more->total > k);
    CHECK(more->total <= msg.size());
    CHECK(more->total <= max_message);
  }
}

// ---------------------------------------------------------------- greeting

struct GreetingRow {
  std::string name;
  Bytes in;
  std::size_t decided_at;               // prefix length at which the verdict is known
  bool ok;                              // Done (method 00) or refused
  std::optional<std::uint8_t> reply;    // refused: METHOD byte to answer
  ErrorKind kind = ErrorKind::Parse;
};

std::vector<GreetingRow> greeting_rows() {
  Bytes all_methods{0x05, 0xff};
  for (int m = 255; m >= 1; --m) all_methods.push_back(static_cast<std::uint8_t>(m == 1 ? 0 : m));
  return {
      {"one method, no-auth", hex("05 01 00"), 3, true, std::nullopt},
      {"no-auth after others", hex("05 03 01 02 00"), 5, true, std::nullopt},
      {"no-auth first of two", hex("05 02 00 02"), 4, true, std::nullopt},
      {"255 methods, no-auth last", all_methods, socks5::kMaxGreeting, true, std::nullopt},
      {"SOCKS4", hex("04 01 00 50 7f 00 00 01 00"), 1, false, std::nullopt},
      {"garbage version", str("GET / HTTP/1.1\r\n"), 1, false, std::nullopt},
      {"zero methods", hex("05 00"), 2, false, 0xff, ErrorKind::Unsupported},
      {"GSSAPI and user/pass only", hex("05 02 01 02"), 4, false, 0xff, ErrorKind::Unsupported},
      {"no acceptable (ff)", hex("05 01 ff"), 3, false, 0xff, ErrorKind::Unsupported},
  };
}

// ---------------------------------------------------------------- request

struct RequestRow {
  std::string name;
  Bytes in;
  std::size_t decided_at;
  std::optional<Socks5Target> target;   // Done
  std::optional<ReplyCode> reply;       // refused
  ErrorKind kind = ErrorKind::Parse;
};

std::vector<RequestRow> request_rows() {
  const Bytes v6_addr = hex("2001 0db8 0000 0000 0000 0000 0000 0007");
  const std::string max_name = long_name(255);
  return {
      {"IPv4", hex("05 01 00 01 0a 00 02 07 1f 90"), 10, ip_target("10.0.2.7", 8080), std::nullopt},
      {"IPv6", cat({hex("05 01 00 04"), v6_addr, hex("01 bb")}), 22, ip_target("2001:db8::7", 443), std::nullopt},
      {"domain", domain_request("example.com", 80), 4 + 1 + 11 + 2, name_target("example.com", 80), std::nullopt},
      {"domain with _ and -", domain_request("_grpc.my-svc.ns.svc.cluster.local", 15008),
       4 + 1 + 33 + 2, name_target("_grpc.my-svc.ns.svc.cluster.local", 15008), std::nullopt},
      {"domain of one byte", domain_request("a", 1), 8, name_target("a", 1), std::nullopt},
      {"domain of 255 bytes", domain_request(max_name, 65535), socks5::kMaxRequest, name_target(max_name, 65535),
       std::nullopt},
      {"domain is an IPv4 literal", domain_request("10.1.2.3", 9080), 4 + 1 + 8 + 2, ip_target("10.1.2.3", 9080),
       std::nullopt},
      {"domain is an IPv6 literal", domain_request("2001:db8::1", 80), 4 + 1 + 11 + 2, ip_target("2001:db8::1", 80),
       std::nullopt},
      {"port 0", hex("05 01 00 01 7f 00 00 01 00 00"), 10, ip_target("127.0.0.1", 0), std::nullopt},

      {"bad version", hex("04 01 00 01 0a 00 02 07 1f 90"), 1, std::nullopt, ReplyCode::GeneralFailure},
      {"BIND", hex("05 02 00 01 0a 00 02 07 1f 90"), 10, std::nullopt, ReplyCode::CommandNotSupported,
       ErrorKind::Unsupported},
      {"UDP ASSOCIATE", domain_request("example.com", 53, socks5::kCmdUdpAssociate), 18, std::nullopt,
       ReplyCode::CommandNotSupported, ErrorKind::Unsupported},
      {"unknown command 9", hex("05 09 00 01 0a 00 02 07 1f 90"), 10, std::nullopt, ReplyCode::CommandNotSupported,
       ErrorKind::Unsupported},
      {"reserved byte set", hex("05 01 01 01 0a 00 02 07 1f 90"), 10, std::nullopt, ReplyCode::GeneralFailure},
      {"ATYP 2", hex("05 01 00 02 0a 00 02 07 1f 90"), 4, std::nullopt, ReplyCode::AddressTypeNotSupported,
       ErrorKind::Unsupported},
      {"ATYP 0", hex("05 01 00 00 00"), 4, std::nullopt, ReplyCode::AddressTypeNotSupported, ErrorKind::Unsupported},
      {"ATYP ff", hex("05 01 00 ff 00 00"), 4, std::nullopt, ReplyCode::AddressTypeNotSupported,
       ErrorKind::Unsupported},
      {"zero-length domain", hex("05 01 00 03 00 00 50"), 7, std::nullopt, ReplyCode::GeneralFailure},
      {"NUL in domain", cat({hex("05 01 00 03 08"), str("exa"), hex("00"), str("mple"), hex("00 50")}), 15,
       std::nullopt, ReplyCode::GeneralFailure},
      {"space in domain", domain_request("exa mple", 80), 15, std::nullopt, ReplyCode::GeneralFailure},
      {"CRLF in domain", domain_request("a\r\nHost: b", 80), 4 + 1 + 10 + 2, std::nullopt,
       ReplyCode::GeneralFailure},
      {"high byte in domain", cat({hex("05 01 00 03 03"), hex("61 ff 62"), hex("00 50")}), 10, std::nullopt,
       ReplyCode::GeneralFailure},
      {"zone id in IPv6 literal", domain_request("fe80::1%eth0", 80), 4 + 1 + 12 + 2, std::nullopt,
       ReplyCode::GeneralFailure},
      {"slash in domain", domain_request("a/b", 80), 10, std::nullopt, ReplyCode::GeneralFailure},
  };
}

// ---------------------------------------------------------------- loopback helpers

awaitable<std::pair<net::TcpStream, net::TcpStream>> connected_pair() {
  auto ex = co_await asio::this_coro::executor;
  auto acc = net::listen(ex, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  REQUIRE(acc);
  auto [c, s] = co_await (net::connect(acc->local_endpoint(), 5s) && net::accept(*acc));
  REQUIRE(c);
  REQUIRE(s);
  co_return std::pair{std::move(*c), std::move(*s)};
}

// Both readers stop at EOF or at an error (a server that refuses may close with unread bytes: RST).
awaitable<Bytes> read_exact(net::TcpStream& s, std::size_t n) {
  Bytes out(n);
  std::size_t have = 0;
  while (have < n) {
    auto r = co_await s.read_some(std::span<std::uint8_t>(out.data() + have, n - have));
    if (!r || *r == 0) break;
    have += *r;
  }
  out.resize(have);
  co_return out;
}

awaitable<Bytes> read_to_eof(net::TcpStream& s) {
  Bytes out;
  std::array<std::uint8_t, 512> buf{};
  for (;;) {
    auto r = co_await s.read_some(buf);
    if (!r || *r == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*r));
  }
  co_return out;
}

struct ClientSaw {
  Bytes method_reply;
  Bytes reply;  // everything after the method reply, up to the server's FIN
};

// A SOCKS5 client: greeting, then (if no-auth was selected) the request, then reads to EOF.
awaitable<ClientSaw> client_side(net::TcpStream c, Bytes greeting, Bytes request) {
  ClientSaw saw;
  (void)co_await c.write_all(greeting);
  saw.method_reply = co_await read_exact(c, 2);
  if (saw.method_reply == hex("05 00") && !request.empty()) (void)co_await c.write_all(request);
  (void)co_await c.shutdown_write();
  saw.reply = co_await read_to_eof(c);
  co_return saw;
}

// The server: handshake, then on success the caller's reply; always ends with a FIN.
awaitable<Result<Socks5Target>> server_side(net::TcpStream s, ReplyCode code, tcp::endpoint bound) {
  auto target = co_await socks5_handshake(s);
  if (target) REQUIRE(co_await send_socks5_reply(s, code, bound));
  (void)co_await s.shutdown_write();
  co_return target;
}

struct Exchange {
  ClientSaw client;
  Result<Socks5Target> server;
};

Exchange run_exchange(Bytes greeting, Bytes request, ReplyCode code, tcp::endpoint bound) {
  asio::io_context io(1);
  auto body = [](Bytes g, Bytes r, ReplyCode c, tcp::endpoint b) -> awaitable<Exchange> {
    auto [client, server] = co_await connected_pair();
    auto [saw, target] = co_await (client_side(std::move(client), std::move(g), std::move(r)) &&
                                   server_side(std::move(server), c, b));
    co_return Exchange{std::move(saw), std::move(target)};
  };
  return test::run_coro(io, body(std::move(greeting), std::move(request), code, bound));
}

}  // namespace

TEST_SUITE("ztunnel/proxy/socks5") {
  TEST_CASE("greetings: NeedMore at every split, then the verdict") {
    for (const auto& row : greeting_rows()) {
      CAPTURE(row.name);
      check_prefixes(&socks5::parse_greeting, row.in, row.decided_at, socks5::kMaxGreeting);
      // The verdict is the same at the decision point, for the whole message and with trailing bytes.
      Bytes longer = row.in;
      longer.insert(longer.end(), {0x05, 0x01, 0x00});
      for (const Bytes* in : std::array<const Bytes*, 2>{&row.in, &longer}) {
        for (std::size_t len : {row.decided_at, in->size()}) {
          CAPTURE(len);
          auto r = socks5::parse_greeting(std::span<const std::uint8_t>(in->data(), len));
          if (row.ok) {
            const auto* done = std::get_if<socks5::Done<std::uint8_t>>(&r);
            REQUIRE(done != nullptr);
            CHECK(done->value == socks5::kMethodNoAuth);
            CHECK(done->consumed == row.decided_at);
          } else {
            const auto* err = std::get_if<socks5::ParseError>(&r);
            REQUIRE(err != nullptr);
            CHECK(err->reply == row.reply);
            CHECK(err->kind == row.kind);
            CHECK(!err->reason.empty());
          }
        }
      }
    }
  }

  TEST_CASE("requests: NeedMore at every split, then the target or the reply code") {
    for (const auto& row : request_rows()) {
      CAPTURE(row.name);
      check_prefixes(&socks5::parse_request, row.in, row.decided_at, socks5::kMaxRequest);
      Bytes longer = row.in;
      longer.insert(longer.end(), 300, 'x');  // pipelined application bytes are never consumed
      for (const Bytes* in : std::array<const Bytes*, 2>{&row.in, &longer}) {
        for (std::size_t len : {row.decided_at, in->size()}) {
          CAPTURE(len);
          auto r = socks5::parse_request(std::span<const std::uint8_t>(in->data(), len));
          if (row.target) {
            const auto* done = std::get_if<socks5::Done<Socks5Target>>(&r);
            REQUIRE(done != nullptr);
            CHECK(done->value.to_string() == row.target->to_string());
            CHECK(done->value == *row.target);
            CHECK(done->consumed == row.decided_at);
            CHECK(done->consumed <= socks5::kMaxRequest);
          } else {
            const auto* err = std::get_if<socks5::ParseError>(&r);
            REQUIRE(err != nullptr);
            REQUIRE(err->reply.has_value());
            CHECK(*err->reply == static_cast<std::uint8_t>(*row.reply));
            CHECK(err->kind == row.kind);
            CHECK(!err->reason.empty());
          }
        }
      }
    }
  }

  TEST_CASE("targets: hostname vs endpoint, printable forms") {
    auto v4 = ip_target("10.0.2.7", 8080);
    CHECK(!v4.is_hostname());
    REQUIRE(v4.endpoint());
    CHECK(*v4.endpoint() == tcp::endpoint(asio::ip::make_address("10.0.2.7"), 8080));
    CHECK(v4.to_string() == "10.0.2.7:8080");
    CHECK(ip_target("2001:db8::7", 443).to_string() == "[2001:db8::7]:443");
    auto name = name_target("example.com", 80);
    CHECK(name.is_hostname());
    CHECK(!name.endpoint());
    CHECK(name.to_string() == "example.com:80");
  }

  TEST_CASE("reply bytes are exact (golden)") {
    CHECK(socks5::build_method_reply(socks5::kMethodNoAuth) == std::array<std::uint8_t, 2>{0x05, 0x00});
    CHECK(socks5::build_method_reply(socks5::kMethodNoAcceptable) == std::array<std::uint8_t, 2>{0x05, 0xff});

    struct Row {
      std::string name;
      ReplyCode code;
      tcp::endpoint bound;
      Bytes want;
    };
    const std::vector<Row> rows{
        {"v4 success", ReplyCode::Succeeded, tcp::endpoint(asio::ip::make_address("10.1.2.3"), 8080),
         hex("05 00 00 01 0a 01 02 03 1f 90")},
        {"v6 host unreachable", ReplyCode::HostUnreachable,
         tcp::endpoint(asio::ip::make_address("2001:db8::1"), 443),
         hex("05 04 00 04 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 01 bb")},
        {"default bound is 0.0.0.0:0", ReplyCode::GeneralFailure, tcp::endpoint(),
         hex("05 01 00 01 00 00 00 00 00 00")},
        {"v4-mapped v6 is sent as v4", ReplyCode::ConnectionRefused,
         tcp::endpoint(asio::ip::make_address("::ffff:192.168.1.2"), 65535), hex("05 05 00 01 c0 a8 01 02 ff ff")},
        {"v6 unspecified", ReplyCode::TtlExpired, tcp::endpoint(tcp::v6(), 0),
         hex("05 06 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      CHECK(socks5::build_reply(row.code, row.bound) == row.want);
    }

    // REP values are RFC 1928's.
    const std::vector<std::pair<ReplyCode, std::uint8_t>> codes{
        {ReplyCode::Succeeded, 0x00},          {ReplyCode::GeneralFailure, 0x01},
        {ReplyCode::NotAllowedByRuleset, 0x02}, {ReplyCode::NetworkUnreachable, 0x03},
        {ReplyCode::HostUnreachable, 0x04},    {ReplyCode::ConnectionRefused, 0x05},
        {ReplyCode::TtlExpired, 0x06},         {ReplyCode::CommandNotSupported, 0x07},
        {ReplyCode::AddressTypeNotSupported, 0x08},
    };
    for (const auto& row : codes) {
      const ReplyCode code = row.first;  // no structured bindings: CAPTURE is a lambda (clang 14)
      const std::uint8_t byte = row.second;
      CAPTURE(std::string(socks5::to_string(code)));
      CHECK(socks5::build_reply(code)[1] == byte);
      CHECK(socks5::to_string(code) != "unknown");
    }
  }

  TEST_CASE("handshake over loopback: CONNECT to a domain, then the caller's reply") {
    const auto bound = tcp::endpoint(asio::ip::make_address("10.0.0.9"), 41000);
    auto ex = run_exchange(hex("05 02 02 00"), domain_request("reviews.default.svc.cluster.local", 9080),
                           ReplyCode::Succeeded, bound);
    REQUIRE_MESSAGE(ex.server, (ex.server ? "" : ex.server.error().message()));
    CHECK(*ex.server == name_target("reviews.default.svc.cluster.local", 9080));
    CHECK(ex.client.method_reply == hex("05 00"));
    CHECK(ex.client.reply == hex("05 00 00 01 0a 00 00 09 a0 28"));
  }

  TEST_CASE("handshake over loopback: CONNECT to IPv6, refused upstream") {
    const Bytes request = cat({hex("05 01 00 04"), hex("fd00 0000 0000 0000 0000 0000 0000 0042"), hex("1f 90")});
    auto ex = run_exchange(hex("05 01 00"), request, ReplyCode::ConnectionRefused, tcp::endpoint());
    REQUIRE_MESSAGE(ex.server, (ex.server ? "" : ex.server.error().message()));
    CHECK(*ex.server == ip_target("fd00::42", 8080));
    REQUIRE(ex.server->endpoint());
    CHECK(ex.server->endpoint()->address().is_v6());
    CHECK(ex.client.method_reply == hex("05 00"));
    CHECK(ex.client.reply == hex("05 05 00 01 00 00 00 00 00 00"));
  }

  TEST_CASE("handshake over loopback: refusals are answered, then reported") {
    SUBCASE("no acceptable method: 05 ff, nothing else") {
      auto ex = run_exchange(hex("05 01 02"), domain_request("example.com", 80), ReplyCode::Succeeded, {});
      REQUIRE(!ex.server);
      CHECK(ex.server.error().kind == ErrorKind::Unsupported);
      CHECK(ex.server.error().context.find("greeting") != std::string::npos);
      CHECK(ex.client.method_reply == hex("05 ff"));
      CHECK(ex.client.reply.empty());
    }
    SUBCASE("BIND: command not supported") {
      auto ex = run_exchange(hex("05 01 00"), hex("05 02 00 01 0a 00 02 07 1f 90"), ReplyCode::Succeeded, {});
      REQUIRE(!ex.server);
      CHECK(ex.server.error().kind == ErrorKind::Unsupported);
      CHECK(ex.client.method_reply == hex("05 00"));
      CHECK(ex.client.reply == hex("05 07 00 01 00 00 00 00 00 00"));
    }
    SUBCASE("bad domain: general failure") {
      auto ex = run_exchange(hex("05 01 00"), domain_request("a b", 80), ReplyCode::Succeeded, {});
      REQUIRE(!ex.server);
      CHECK(ex.server.error().kind == ErrorKind::Parse);
      CHECK(ex.client.reply == hex("05 01 00 01 00 00 00 00 00 00"));
    }
    SUBCASE("SOCKS4: closed without an answer") {
      auto ex = run_exchange(hex("04 01 00 50 7f 00 00 01 00"), {}, ReplyCode::Succeeded, {});
      REQUIRE(!ex.server);
      CHECK(ex.server.error().kind == ErrorKind::Parse);
      CHECK(ex.client.method_reply.empty());
    }
    SUBCASE("EOF in the middle of the request") {
      auto ex = run_exchange(hex("05 01 00"), hex("05 01 00 03 0b 65 78"), ReplyCode::Succeeded, {});
      REQUIRE(!ex.server);
      CHECK(ex.server.error().kind == ErrorKind::Closed);
      CHECK(ex.client.method_reply == hex("05 00"));
      CHECK(ex.client.reply.empty());
    }
  }
}
