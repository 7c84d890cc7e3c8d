#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/grpc/metadata.h"

using namespace ambient;
using namespace ambient::grpc;
using namespace std::chrono_literals;
using namespace std::string_literals;

TEST_SUITE("common/grpc/metadata") {
  TEST_CASE("grpc-timeout encoding") {
    struct Row {
      std::chrono::nanoseconds in;
      std::string out;
    };
    const std::vector<Row> rows = {
        {100ms, "100m"},
        {5s, "5S"},
        {90s, "90S"},
        {2min, "2M"},
        {2h, "2H"},
        {1500us, "1500u"},
        {1ns, "1n"},
        {99'999'999ns, "99999999n"},
        {123'456'789ns, "123457u"},   // not exact in 8 digits: finest unit that fits, rounded up
        {std::chrono::nanoseconds(100'000'000'001), "100001m"},  // 100000001u would be 9 digits
        {0ns, "1n"},
        {-5ms, "1n"},
        {std::chrono::nanoseconds::max(), "2562048H"},  // ≈ 292 years, rounded up to whole hours
    };
    for (const auto& r : rows) {
      CAPTURE(r.out);
      const std::string got = encode_timeout(r.in);
      CHECK(got == r.out);
      CHECK(got.size() <= 9);
    }
  }

  TEST_CASE("grpc-timeout parsing") {
    CHECK(*parse_timeout("100m") == 100ms);
    CHECK(*parse_timeout("5S") == 5s);
    CHECK(*parse_timeout("3M") == 3min);
    CHECK(*parse_timeout("1H") == 1h);
    CHECK(*parse_timeout("7u") == 7us);
    CHECK(*parse_timeout("99999999n") == 99'999'999ns);
    CHECK(*parse_timeout("99999999H") == std::chrono::nanoseconds::max());  // saturates
    for (const char* bad : {"", "m", "123456789m", "10x", "1.5S", "-1S", "10"}) {
      CAPTURE(bad);
      auto r = parse_timeout(bad);
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::Parse);
    }
    for (std::chrono::nanoseconds d : {std::chrono::nanoseconds(1ns), std::chrono::nanoseconds(100ms),
                                       std::chrono::nanoseconds(5s), std::chrono::nanoseconds(123'456'789),
                                       std::chrono::nanoseconds(3h)}) {
      auto back = parse_timeout(encode_timeout(d));
      REQUIRE(back);
      CHECK(*back >= d);
    }
  }

  TEST_CASE("base64 for -bin values") {
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg");
    CHECK(base64_encode("fo") == "Zm8");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_encode("f", true) == "Zg==");
    CHECK(base64_encode("\x00\x01\xfe\xff"s) == "AAH+/w");
    CHECK(*base64_decode("AAH+/w") == "\x00\x01\xfe\xff"s);
    CHECK(*base64_decode("AAH+/w==") == "\x00\x01\xfe\xff"s);
    CHECK(*base64_decode("Zm9v") == "foo");
    CHECK(*base64_decode("Zm8=") == "fo");
    for (const char* bad : {"Z", "Zm9v=", "Zg===", "Z=g=", "Zm9*", "Zh"}) {
      CAPTURE(bad);
      CHECK_FALSE(base64_decode(bad));
    }
    std::string all;
    for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
    CHECK(*base64_decode(base64_encode(all)) == all);
  }

  TEST_CASE("custom metadata validation") {
    CHECK(validate_metadata("authorization", "Bearer abc.def"));
    CHECK(validate_metadata("clusterid", "Kubernetes"));
    CHECK(validate_metadata("x-trace_id.v2", "1"));
    CHECK(validate_metadata("x-raw-bin", "\x00\xff\n"s));
    struct Row {
      std::string name, value;
    };
    const std::vector<Row> bad = {{"", "v"},           {"Authorization", "v"}, {":path", "/x"},
                                  {"grpc-timeout", "1S"}, {"te", "trailers"},  {"content-type", "text/plain"},
                                  {"host", "x"},        {"x-ok", "a\nb"},     {"x-ok", "caf\xc3\xa9"},
                                  {"sp ace", "v"}};
    for (const auto& r : bad) {
      CAPTURE(r.name);
      auto v = validate_metadata(r.name, r.value);
      REQUIRE_FALSE(v);
      CHECK(v.error().kind == ErrorKind::InvalidArgument);
    }
  }

  TEST_CASE("received headers as metadata") {
    const h2::Headers wire = {{":status", "200"},
                              {"content-type", "application/grpc"},
                              {"x-echo-trailer", "done"},
                              {"x-echo-trailer-bin", "AAH+/w=="},
                              {"x-broken-bin", "%%%"}};
    const h2::Headers md = to_metadata(wire);
    REQUIRE(md.size() == 4);
    CHECK(md[0].name == "content-type");
    CHECK(*h2::find_header(md, "x-echo-trailer") == "done");
    CHECK(*h2::find_header(md, "x-echo-trailer-bin") == "\x00\x01\xfe\xff"s);
    CHECK(*h2::find_header(md, "x-broken-bin") == "%%%");  // undecodable: kept as received
    CHECK(header_field_size("te", "trailers") == 42);
  }
}
