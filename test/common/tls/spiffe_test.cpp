#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/tls/spiffe.h"

using namespace ambient;
using namespace ambient::tls;

TEST_SUITE("common/tls/spiffe") {
  TEST_CASE("valid ids parse into their parts and print back unchanged") {
    struct Row {
      std::string uri;
      SpiffeId want;
    };
    const std::vector<Row> rows = {
        {"spiffe://cluster.local/ns/default/sa/default", {"cluster.local", "default", "default"}},
        {"spiffe://td/ns/istio-system/sa/ztunnel", {"td", "istio-system", "ztunnel"}},
        {"spiffe://example.org/ns/my.ns/sa/sa_1", {"example.org", "my.ns", "sa_1"}},
        {"spiffe://Corp-Domain.io/ns/A/sa/B", {"Corp-Domain.io", "A", "B"}},
    };
    for (const auto& row : rows) {
      CAPTURE(row.uri);
      auto id = parse_spiffe(row.uri);
      REQUIRE_MESSAGE(id.has_value(), (id ? std::string() : id.error().message()));
      CHECK(*id == row.want);
      CHECK(id->to_string() == row.uri);
    }
  }

  TEST_CASE("to_string builds the Istio shape") {
    CHECK(SpiffeId{"cluster.local", "ns1", "sa1"}.to_string() == "spiffe://cluster.local/ns/ns1/sa/sa1");
  }

  TEST_CASE("everything but the exact five-part shape is refused with the reason") {
    struct Row {
      std::string uri;
      std::string reason;  // substring of the error context
    };
    const std::vector<Row> rows = {
        {"", "scheme must be spiffe://"},
        {"http://cluster.local/ns/a/sa/b", "scheme must be spiffe://"},
        {"SPIFFE://cluster.local/ns/a/sa/b", "scheme must be spiffe://"},
        {"spiffe://cluster.local", "got 1 part(s)"},
        {"spiffe://cluster.local/ns/a", "got 3 part(s)"},
        {"spiffe://cluster.local/ns/a/sa", "got 4 part(s)"},
        {"spiffe://cluster.local/ns/a/sa/b/c", "extra path segments"},
        {"spiffe://cluster.local/ns/a/sa/b/", "extra path segments"},
        {"spiffe://cluster.local/NS/a/sa/b", "second segment must be 'ns', got 'NS'"},
        {"spiffe://cluster.local/ns/a/serviceaccount/b", "fourth segment must be 'sa', got 'serviceaccount'"},
        {"spiffe:///ns/a/sa/b", "empty trust domain"},
        {"spiffe://cluster.local/ns//sa/b", "empty namespace"},
        {"spiffe://cluster.local/ns/a/sa/", "empty service account"},
        {"spiffe://cluster.local/ns/a/sa/b?x=1", "query or fragment not allowed"},
        {"spiffe://cluster.local/ns/a/sa/b#frag", "query or fragment not allowed"},
        {"spiffe://cluster.local:443/ns/a/sa/b", "trust domain 'cluster.local:443' has character ':'"},
        {"spiffe://user@cluster.local/ns/a/sa/b", "has character '@'"},
        {"spiffe://cluster.local/ns/a%2Fb/sa/c", "namespace 'a%2Fb' has character '%'"},
        {"spiffe://cluster.local/ns/a b/sa/c", "namespace 'a b' has character ' '"},
        {"spiffe://cluster.local/ns/../sa/c", "namespace may not be '..'"},
        {"spiffe://cluster.local/ns/a/sa/.", "service account may not be '.'"},
        {std::string("spiffe://cluster.local/ns/a/sa/b\0c", 34), "has character"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.uri);
      auto id = parse_spiffe(row.uri);
      REQUIRE_FALSE(id.has_value());
      CHECK(id.error().kind == ErrorKind::InvalidArgument);
      CHECK_MESSAGE(id.error().context.find(row.reason) != std::string::npos, id.error().context);
    }
  }
}
