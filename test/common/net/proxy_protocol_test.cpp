// PROXY protocol v2 (common/net/proxy_protocol.h): the encoder against the spec's bytes, round trips, every
// prefix of a valid header asking for more, and each malformed header refused by name.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/net/proxy_protocol.h"

using namespace ambient;
using namespace ambient::net;
using boost::asio::ip::make_address;
using boost::asio::ip::tcp;

namespace {

std::span<const std::uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

}  // namespace

TEST_CASE("PROXY v2: the IPv4 header is the spec's bytes, with Istio's identity TLV") {
  const std::string h = encode_proxy_v2({make_address("10.0.0.1"), 40000}, {make_address("10.96.0.10"), 80},
                                        {{kTlvPeerIdentity, "spiffe://cluster.local/ns/a/sa/b"}});
  const std::string sig("\r\n\r\n\0\r\nQUIT\n", 12);
  CHECK(h.substr(0, 12) == sig);
  CHECK(static_cast<unsigned char>(h[12]) == 0x21);  // v2, PROXY
  CHECK(static_cast<unsigned char>(h[13]) == 0x11);  // TCP over IPv4
  const std::size_t len = (static_cast<unsigned char>(h[14]) << 8) | static_cast<unsigned char>(h[15]);
  CHECK(len == 12 + 3 + 32);
  CHECK(h.size() == 16 + len);
  CHECK(h.substr(16, 4) == std::string("\x0a\x00\x00\x01", 4));
  CHECK(h.substr(20, 4) == std::string("\x0a\x60\x00\x0a", 4));
  CHECK(h.substr(24, 4) == std::string("\x9c\x40\x00\x50", 4));  // ports 40000, 80
  CHECK(static_cast<unsigned char>(h[28]) == 0xD0);
}

TEST_CASE("PROXY v2: round trips (IPv4, IPv6, mixed, TLVs) and every prefix asks for more") {
  struct Row {
    const char* name;
    tcp::endpoint src, dst;
    std::vector<std::pair<std::uint8_t, std::string>> tlvs;
  };
  const std::vector<Row> rows = {
      {"ipv4", {make_address("127.0.0.2"), 5}, {make_address("127.10.0.20"), 80}, {}},
      {"ipv6 with tlvs", {make_address("fd00::1"), 1234}, {make_address("fd00::2"), 8080},
       {{kTlvPeerIdentity, "spiffe://td/ns/x/sa/y"}, {kTlvServiceHost, "echo.demo.svc.cluster.local"}, {0x01, ""}}},
      {"v4-mapped source with an IPv4 destination: written as IPv4", {make_address("::ffff:10.1.2.3"), 9}, {make_address("10.1.2.4"), 10}, {}},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    const std::string h = encode_proxy_v2(row.src, row.dst, row.tlvs) + "payload";
    for (std::size_t n = 0; n < h.size() - 7; ++n) {
      auto p = parse_proxy_v2(bytes(h.substr(0, n)));
      REQUIRE(p.has_value());
      CHECK(!p->has_value());
    }
    auto p = parse_proxy_v2(bytes(h));
    REQUIRE(p.has_value());
    REQUIRE(p->has_value());
    const auto& got = **p;
    CHECK(got.consumed == h.size() - 7);
    CHECK(!got.header.local);
    const auto unmap = [](const tcp::endpoint& e) {
      auto a = e.address();
      if (a.is_v6() && a.to_v6().is_v4_mapped()) a = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
      return tcp::endpoint(a, e.port());
    };
    CHECK(got.header.source == unmap(row.src));
    CHECK(got.header.destination == unmap(row.dst));
    CHECK(got.header.tlvs == row.tlvs);
  }
}

TEST_CASE("PROXY v2: malformed headers are refused, naming what is wrong") {
  const std::string good = encode_proxy_v2({make_address("10.0.0.1"), 1}, {make_address("10.0.0.2"), 2});
  auto with = [&](std::size_t at, unsigned char v) {
    std::string s = good;
    s[at] = static_cast<char>(v);
    return s;
  };
  struct Row {
    const char* name;
    std::string input;
    const char* says;
  };
  std::string tlv_overflow = encode_proxy_v2({make_address("10.0.0.1"), 1}, {make_address("10.0.0.2"), 2}, {{0xD0, "abcd"}});
  tlv_overflow[16 + 12 + 2] = 9;  // the TLV claims 9 bytes, 4 follow
  std::string too_long = good;
  too_long[14] = 0x10;  // 4096 + 16 bytes
  const std::vector<Row> rows = {
      {"HTTP instead", "GET / HTTP/1.1\r\n\r\n", "no signature"},
      {"version 1 text header", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "no signature"},
      {"version 3", with(12, 0x31), "version 3"},
      {"command 2", with(12, 0x22), "unknown command 2"},
      {"UDP over IPv4", with(13, 0x12), "not TCP over IPv4 or IPv6"},
      {"UNIX stream", with(13, 0x31), "not TCP over IPv4 or IPv6"},
      {"length over the limit", too_long, "over the 4096 byte limit"},
      {"addresses cut short", with(15, 4) + std::string(100, '\0'), "cannot hold the addresses"},
      {"TLV past the end", tlv_overflow, "does not fit"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    auto p = parse_proxy_v2(bytes(row.input));
    REQUIRE(!p.has_value());
    CHECK(p.error().kind == ErrorKind::Parse);
    CHECK(p.error().context.find(row.says) != std::string::npos);
  }
  SUBCASE("LOCAL (a health check) carries no addresses") {
    auto p = parse_proxy_v2(bytes(with(12, 0x20)));
    REQUIRE(p.has_value());
    REQUIRE(p->has_value());
    CHECK((*p)->header.local);
  }
}
