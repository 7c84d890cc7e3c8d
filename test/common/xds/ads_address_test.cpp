// parse_xds_address as a table.
#include <doctest/doctest.h>

#include "common/xds/ads_client.h"

using namespace ambient;

TEST_CASE("parse_xds_address") {
  struct Row {
    const char* in;
    const char* host;  // nullptr = refused
    std::uint16_t port;
    const char* error_part;
  };
  const Row rows[] = {
      {"https://istiod.istio-system.svc:15012", "istiod.istio-system.svc", 15012, nullptr},
      {"https://istiod.istio-system.svc:15012/", "istiod.istio-system.svc", 15012, nullptr},
      {"127.0.0.1:9000", "127.0.0.1", 9000, nullptr},
      {"https://[::1]:15012", "::1", 15012, nullptr},
      {"http://istiod:15010", nullptr, 0, "only https://"},
      {"https://istiod", nullptr, 0, "no port"},
      {"https://istiod:0", nullptr, 0, "1..65535"},
      {"https://istiod:70000", nullptr, 0, "1..65535"},
      {"https://:15012", nullptr, 0, "1..65535"},
      {"https://[::1]15012", nullptr, 0, "[IPv6]:port"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.in);
    auto r = xds::parse_xds_address(row.in);
    if (row.host != nullptr) {
      REQUIRE(r.has_value());
      CHECK(r->host == row.host);
      CHECK(r->port == row.port);
    } else {
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().context.find(row.error_part) != std::string::npos);
      CHECK(r.error().context.find(row.in) != std::string::npos);
    }
  }
}
