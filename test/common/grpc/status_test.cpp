#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/grpc/status.h"

using namespace ambient;
using namespace ambient::grpc;
using namespace std::string_literals;

TEST_SUITE("common/grpc/status") {
  TEST_CASE("grpc-message percent-decoding") {
    struct Row {
      const char* name;
      std::string wire;
      std::string decoded;
    };
    const std::vector<Row> rows = {
        {"plain ASCII", "bad bearer token", "bad bearer token"},
        {"percent itself", "100%25 sure", "100% sure"},
        {"UTF-8 bytes", "caf%C3%A9", "caf\xc3\xa9"},
        {"lower-case hex", "caf%c3%a9", "caf\xc3\xa9"},
        {"newline", "line1%0Aline2", "line1\nline2"},
        {"invalid hex kept", "50%ZZ off", "50%ZZ off"},
        {"truncated at end kept", "trail%4", "trail%4"},
        {"lone percent at end kept", "trail%", "trail%"},
        {"empty", "", ""},
    };
    for (const auto& r : rows) {
      CAPTURE(r.name);
      CHECK(percent_decode(r.wire) == r.decoded);
    }
  }

  TEST_CASE("grpc-message percent-encoding round-trips") {
    CHECK(percent_encode("100% sure") == "100%25 sure");
    CHECK(percent_encode("caf\xc3\xa9\n") == "caf%C3%A9%0A");
    CHECK(percent_encode("~ !") == "~ !");
    const std::string all = [] {
      std::string s;
      for (int c = 0; c < 256; ++c) s.push_back(static_cast<char>(c));
      return s;
    }();
    CHECK(percent_decode(percent_encode(all)) == all);
  }

  TEST_CASE("status from trailers and Trailers-Only headers") {
    SUBCASE("OK") {
      auto st = status_from_headers({{"grpc-status", "0"}});
      REQUIRE(st);
      CHECK(st->ok());
      CHECK(st->message.empty());
    }
    SUBCASE("code and decoded message") {
      auto st = status_from_headers({{":status", "200"}, {"content-type", "application/grpc"},
                                     {"grpc-status", "7"}, {"grpc-message", "denied%3A no %E2%9C%93"}});
      REQUIRE(st);
      CHECK(st->code == 7);
      CHECK(st->message == "denied: no \xe2\x9c\x93");
      Error e = st->to_error("/ambient.test.Echo/Unary");
      CHECK(e.kind == ErrorKind::GrpcStatus);
      CHECK(e.code == 7);
      CHECK(e.context == "/ambient.test.Echo/Unary: PERMISSION_DENIED: denied: no \xe2\x9c\x93");
    }
    SUBCASE("absent") { CHECK_FALSE(status_from_headers({{"x-other", "1"}})); }
    SUBCASE("malformed is UNKNOWN and says why") {
      for (const char* bad : {"", "abc", "7x", "-1"}) {
        CAPTURE(bad);
        auto st = status_from_headers({{"grpc-status", bad}});
        REQUIRE(st);
        CHECK(st->code == 2);
        CHECK(st->message.find("malformed grpc-status") != std::string::npos);
      }
    }
    SUBCASE("codes beyond 16 are kept") {
      auto st = status_from_headers({{"grpc-status", "42"}});
      REQUIRE(st);
      CHECK(st->code == 42);
      CHECK(st->to_error("/p/q").context == "/p/q: CODE_42");
    }
  }

  TEST_CASE("HTTP status to gRPC code (http-grpc-status-mapping)") {
    CHECK(status_from_http(400) == StatusCode::Internal);
    CHECK(status_from_http(401) == StatusCode::Unauthenticated);
    CHECK(status_from_http(403) == StatusCode::PermissionDenied);
    CHECK(status_from_http(404) == StatusCode::Unimplemented);
    for (int s : {429, 502, 503, 504}) CHECK(status_from_http(s) == StatusCode::Unavailable);
    CHECK(status_from_http(500) == StatusCode::Unknown);
    CHECK(to_string(StatusCode::DeadlineExceeded) == "DEADLINE_EXCEEDED");
    CHECK(to_string(StatusCode::Unauthenticated) == "UNAUTHENTICATED");
  }
}
