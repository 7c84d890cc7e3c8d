#include <doctest/doctest.h>

#include "common/base/result.h"

using namespace ambient;

namespace {
Result<int> half(int v) {
  if (v % 2) return errorf(ErrorKind::InvalidArgument, "{} is odd", v);
  return v / 2;
}
Result<int> quarter(int v) {
  auto h = half(v);
  if (!h) return std::move(h).error();
  return half(*h);
}
Result<void> check_even(int v) {
  AMBIENT_TRY(half(v));
  return ok();
}
}  // namespace

TEST_SUITE("common/base/result") {
  TEST_CASE("values and errors propagate with their kind and context") {
    CHECK(*quarter(8) == 2);
    auto r = quarter(6);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::InvalidArgument);
    CHECK(r.error().message() == "invalid_argument: 3 is odd");
    CHECK(check_even(4).has_value());
    CHECK_FALSE(check_even(5).has_value());
    CHECK(make_error(ErrorKind::HttpStatus, "CONNECT refused", 503).message() == "http_status (503): CONNECT refused");
    CHECK(fmt::format("{}", make_error(ErrorKind::Closed, "eof")) == "closed: eof");
  }
  TEST_CASE("move-only values") {
    Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
    REQUIRE(r);
    auto p = std::move(r).value();
    CHECK(*p == 7);
  }
}
