#include <doctest/doctest.h>

#include <string>

#include "common/state/ip_addr.h"
#include "common/state/ip_asio.h"

using ambient::state::IpAddr;
using ambient::state::IpPrefix;

TEST_SUITE("common/state/ip_addr") {
  TEST_CASE("parse and print round-trip") {
    struct Row { const char* in; const char* out; bool v6; };
    for (const Row& row : {Row{"10.0.0.1", "10.0.0.1", false}, Row{"0.0.0.0", "0.0.0.0", false},
                           Row{"fd00::1", "fd00::1", true}, Row{"FD00:0:0::0001", "fd00::1", true},
                           Row{"::ffff:10.1.2.3", "::ffff:10.1.2.3", true}}) {
      CAPTURE(row.in);
      auto ip = IpAddr::parse(row.in);
      REQUIRE(ip);
      CHECK(ip->to_string() == row.out);
      CHECK(ip->is_v6() == row.v6);
      CHECK(ip->size() == (row.v6 ? 16u : 4u));
      auto back = IpAddr::from_bytes(ip->to_bytes());
      REQUIRE(back);
      CHECK(*back == *ip);
    }
    for (const char* bad : {"", "10.0.0.300", "10.0.0", "10.0.0.1 ", "[::1]", "fe80::1%eth0", "host", "1::2::3"}) {
      CAPTURE(bad);
      CHECK_FALSE(IpAddr::parse(bad));
    }
  }
  TEST_CASE("bytes: only 4 or 16") {
    CHECK(IpAddr::from_bytes(std::string("\x7f\x00\x00\x01", 4))->to_string() == "127.0.0.1");
    CHECK_FALSE(IpAddr::from_bytes(""));
    CHECK_FALSE(IpAddr::from_bytes("abc"));
    CHECK_FALSE(IpAddr::from_bytes(std::string(5, '\0')));
  }
  TEST_CASE("canonical folds IPv4-mapped IPv6 only") {
    CHECK(IpAddr::parse("::ffff:10.1.2.3")->canonical() == *IpAddr::parse("10.1.2.3"));
    CHECK(IpAddr::parse("fd00::1")->canonical() == *IpAddr::parse("fd00::1"));
    CHECK(IpAddr::parse("10.1.2.3")->canonical() == *IpAddr::parse("10.1.2.3"));
    CHECK(IpAddr::parse("::10.1.2.3")->canonical().is_v6());  // IPv4-compatible, not mapped
  }
  TEST_CASE("prefixes") {
    struct Row { const char* cidr; const char* ip; bool in; };
    for (const Row& row : {Row{"10.0.0.0/8", "10.200.3.4", true}, Row{"10.0.0.0/8", "11.0.0.1", false},
                           Row{"10.1.2.3", "10.1.2.3", true}, Row{"10.1.2.3", "10.1.2.4", false},
                           Row{"0.0.0.0/0", "192.168.1.1", true}, Row{"10.0.0.128/25", "10.0.0.200", true},
                           Row{"10.0.0.128/25", "10.0.0.127", false}, Row{"fd00::/16", "fd00:1::5", true},
                           Row{"fd00::/16", "fd01::5", false}, Row{"10.0.0.0/8", "::ffff:10.0.0.1", false}}) {
      CAPTURE(row.cidr);
      CAPTURE(row.ip);
      auto p = IpPrefix::parse(row.cidr);
      REQUIRE(p);
      CHECK(p->contains(*IpAddr::parse(row.ip)) == row.in);
    }
    CHECK(IpPrefix::parse("10.1.2.3")->len == 32);
    CHECK(IpPrefix::parse("fd00::1")->len == 128);
    CHECK(IpPrefix::parse("10.0.0.0/8")->to_string() == "10.0.0.0/8");
    for (const char* bad : {"10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/x", "/8", "10.0.0.0/8/1", "10.0.0.0/-1"}) {
      CAPTURE(bad);
      CHECK_FALSE(IpPrefix::parse(bad));
    }
  }
  TEST_CASE("asio conversions") {
    auto v4 = boost::asio::ip::make_address("10.1.2.3");
    CHECK(ambient::state::from_asio(v4) == *IpAddr::parse("10.1.2.3"));
    CHECK(ambient::state::to_asio(*IpAddr::parse("10.1.2.3")) == v4);
    auto v6 = boost::asio::ip::make_address("fd00::7");
    CHECK(ambient::state::from_asio(v6) == *IpAddr::parse("fd00::7"));
    CHECK(ambient::state::to_asio(*IpAddr::parse("fd00::7")) == v6);
    // A dual-stack socket's view of an IPv4 peer finds the IPv4 address.
    CHECK(ambient::state::from_asio(boost::asio::ip::make_address("::ffff:10.1.2.3")) == *IpAddr::parse("10.1.2.3"));
  }
}
