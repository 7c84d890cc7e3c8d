#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "common/rbac/connection.h"

using namespace ambient;
using namespace ambient::rbac;

TEST_SUITE("common/rbac/connection") {
  TEST_CASE("SPIFFE identity parsing follows ztunnel's Identity::from_str") {
    struct Valid { std::string_view uri; std::string_view td, ns, sa; };
    for (const Valid& row : {
             Valid{"spiffe://cluster.local/ns/default/sa/client", "cluster.local", "default", "client"},
             Valid{"spiffe://td/ns/istio-system/sa/ztunnel", "td", "istio-system", "ztunnel"},
             Valid{"spiffe://td/ns//sa/x", "td", "", "x"},  // empty segments are accepted
             Valid{"spiffe:///ns/a/sa/", "", "a", ""},
         }) {
      CAPTURE(row.uri);
      auto id = Identity::parse(row.uri);
      REQUIRE(id);
      CHECK(id->trust_domain() == row.td);
      CHECK(id->namespace_() == row.ns);
      CHECK(id->service_account() == row.sa);
      CHECK(id->to_string() == row.uri);
      CHECK(id->principal() == row.uri.substr(9));
      CHECK(*id == Identity::from_parts(row.td, row.ns, row.sa));
    }
    for (std::string_view bad : {
             "",
             "cluster.local/ns/default/sa/client",         // no scheme
             "SPIFFE://td/ns/a/sa/b",                      // scheme is case-sensitive
             "spiffe://td/ns/a/sa",                        // 4 segments
             "spiffe://td/ns/a/sa/b/",                     // trailing slash: 6 segments
             "spiffe://td/ns/a/sa/b/extra",                // 6 segments
             "spiffe://td/namespace/a/sa/b",               // "ns" keyword
             "spiffe://td/ns/a/serviceaccount/b",          // "sa" keyword
             "spiffe://td",
         }) {
      CAPTURE(bad);
      auto id = Identity::parse(bad);
      REQUIRE_FALSE(id);
      CHECK(id.error().kind == ErrorKind::Parse);
    }
  }

  TEST_CASE("identity from parts") {
    const Identity id = Identity::from_parts("td", "ns1", "sa1");
    CHECK(id.principal() == "td/ns/ns1/sa/sa1");
    CHECK(id.to_string() == "spiffe://td/ns/ns1/sa/sa1");
    CHECK(id.trust_domain() == "td");
    CHECK(id.namespace_() == "ns1");
    CHECK(id.service_account() == "sa1");
    const Identity copy = id;  // parts are offsets, so copies stay valid
    CHECK(copy.namespace_() == "ns1");
    CHECK(copy.service_account() == "sa1");
    CHECK_FALSE(id == Identity::from_parts("td", "ns1", "sa2"));
  }

  TEST_CASE("IP addresses: parse, bytes, canonical form") {
    struct Row { std::string_view text; bool v4; bool mapped; std::string_view canonical; };
    for (const Row& row : {
             Row{"10.0.0.1", true, false, "10.0.0.1"},
             Row{"0.0.0.0", true, false, "0.0.0.0"},
             Row{"2001:db8::1", false, false, "2001:db8::1"},
             Row{"::1", false, false, "::1"},
             Row{"::ffff:10.0.0.1", false, true, "10.0.0.1"},
             Row{"::ffff:0:0", false, true, "0.0.0.0"},
             Row{"::10.0.0.1", false, false, "::10.0.0.1"},  // v4-compatible is not v4-mapped
             Row{"64:ff9b::10.0.0.1", false, false, "64:ff9b::a00:1"},
         }) {
      CAPTURE(row.text);
      auto ip = IpAddress::parse(row.text);
      REQUIRE(ip);
      CHECK(ip->is_v4() == row.v4);
      CHECK(ip->bytes().size() == (row.v4 ? 4u : 16u));
      CHECK(ip->is_v4_mapped() == row.mapped);
      CHECK(ip->canonical().to_string() == row.canonical);
      CHECK(ip->canonical().is_v4() == (row.v4 || row.mapped));
    }
    for (std::string_view bad : {"", "10.0.0", "10.0.0.256", "1.2.3.4/32", "2001:db8::g", " 10.0.0.1", "host"}) {
      CAPTURE(bad);
      auto ip = IpAddress::parse(bad);
      REQUIRE_FALSE(ip);
      CHECK(ip.error().kind == ErrorKind::Parse);
    }
  }

  TEST_CASE("IP addresses from protobuf bytes") {
    auto v4 = IpAddress::from_bytes(std::string("\x0a\x00\x00\x01", 4));
    REQUIRE(v4);
    CHECK(*v4 == IpAddress::v4({10, 0, 0, 1}));
    CHECK(v4->to_string() == "10.0.0.1");
    auto v6 = IpAddress::from_bytes(std::string("\x20\x01\x0d\xb8" "\0\0\0\0" "\0\0\0\0" "\0\0\0\x01", 16));
    REQUIRE(v6);
    CHECK(v6->to_string() == "2001:db8::1");
    for (std::size_t size : {0u, 1u, 3u, 5u, 15u, 17u}) {
      CAPTURE(size);
      CHECK_FALSE(IpAddress::from_bytes(std::string(size, '\x01')));
    }
    CHECK(IpAddress{} == IpAddress::v4({0, 0, 0, 0}));
    CHECK_FALSE(IpAddress::parse("::ffff:10.0.0.1").value() == IpAddress::v4({10, 0, 0, 1}));
    CHECK(IpAddress::parse("::ffff:10.0.0.1").value().canonical() == IpAddress::v4({10, 0, 0, 1}));
  }
}
