// cni/install/json_pretty.h and config_json.h: the layout of the files we write, and the round trip (parse,
// print, parse) that makes inserting our entry idempotent byte for byte.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "cni/install/config_json.h"
#include "cni/install/json_pretty.h"

using namespace ambient;
using namespace ambient::cni;
using namespace ambient::cni::install;

TEST_SUITE("cni/install/json_pretty") {
  TEST_CASE("layout: two spaces, one member per line, empty containers inline, final newline") {
    struct Row {
      const char* in;
      const char* out;
    };
    const std::vector<Row> rows = {
        {R"({})", "{}\n"},
        {R"([])", "[]\n"},
        {R"(7)", "7\n"},
        {R"({"b":1,"a":[true,null,{}],"c":{"d":"e","f":[]}})",
         "{\n  \"b\": 1,\n  \"a\": [\n    true,\n    null,\n    {}\n  ],\n  \"c\": {\n    \"d\": \"e\",\n    \"f\": []\n  }\n}\n"},
        {R"([[1],[]])", "[\n  [\n    1\n  ],\n  []\n]\n"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.in);
      auto v = parse_config_json(row.in, "row");
      REQUIRE(v.has_value());
      CHECK(pretty_json(*v) == row.out);
    }
  }

  TEST_CASE("numbers: doubles keep a '.' or an exponent and read back equal; out-of-range stays valid JSON") {
    struct Row {
      const char* in;
      const char* out;
    };
    const std::vector<Row> rows = {
        {"1.0", "1.0\n"},       {"1.5", "1.5\n"},          {"-0.0", "-0.0\n"},      {"0.1", "0.1\n"},
        {"1e300", "1e+300\n"},  {"1e999", "1e999\n"},      {"-1e999", "-1e999\n"},  {"123", "123\n"},
        {"-9223372036854775808", "-9223372036854775808\n"}, {"18446744073709551615", "18446744073709551615\n"},
        {"18446744073709551616", "1.8446744073709552e+19\n"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.in);
      auto v = parse_config_json(row.in, "row");
      REQUIRE(v.has_value());
      const std::string text = pretty_json(*v);
      CHECK(text == row.out);
      auto back = parse_config_json(text, "printed");
      REQUIRE(back.has_value());
      CHECK(back->kind() == v->kind());
      CHECK(pretty_json(*back) == text);
    }
  }

  TEST_CASE("numbers Boost.JSON 1.81 misreads are read correctly rounded, so they print back stably") {
    struct Row {
      const char* in;
      const char* out;
    };
    // Boost.JSON's own parser reads "-9223372045368775808" as -9.223372045368775e+18 (2 ulp off), and that
    // text as yet another double; strtod reads both as the doubles nearest to them.
    const std::vector<Row> rows = {
        {"-9223372045368775808", "-9.223372045368777e+18\n"},
        {"-9.223372045368775e+18", "-9.223372045368775e+18\n"},
        {"123456789012345678901234567890", "1.2345678901234568e+29\n"},
        {"2.2250738585072011e-308", "2.225073858507201e-308\n"},
        {"4.9406564584124654e-324", "5e-324\n"},
        {"1e-400", "0.0\n"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.in);
      auto v = parse_config_json(row.in, "row");
      REQUIRE(v.has_value());
      CHECK(v->get_double() == std::strtod(row.in, nullptr));
      const std::string text = pretty_json(*v);
      CHECK(text == row.out);
      auto back = parse_config_json(text, "printed");
      REQUIRE(back.has_value());
      CHECK(back->get_double() == v->get_double());
    }
  }

  TEST_CASE("a zero with a huge exponent is zero (Boost.JSON's own parser makes it NaN)") {
    for (const auto& row : {std::pair{"0e999", "0.0\n"}, std::pair{"-0.0e400", "-0.0\n"}}) {
      const char* in = row.first;  // no structured bindings: CAPTURE is a lambda (clang 14)
      const char* out = row.second;
      CAPTURE(in);
      auto v = parse_config_json(in, "row");
      REQUIRE(v.has_value());
      const std::string text = pretty_json(*v);
      CHECK(text == out);
      auto back = parse_config_json(text, "printed");
      REQUIRE(back.has_value());
      CHECK(pretty_json(*back) == text);
    }
  }

  TEST_CASE("strings: escaped as JSON needs, UTF-8 kept") {
    auto v = parse_config_json(R"({"k\"ey":"a\\b\n\u0001é/"})", "row");
    REQUIRE(v.has_value());
    CHECK(pretty_json(*v) == "{\n  \"k\\\"ey\": \"a\\\\b\\n\\u0001é/\"\n}\n");
  }
}

TEST_SUITE("cni/install/config_json") {
  TEST_CASE("errors: line, column, byte; trailing data; depth") {
    struct Row {
      std::string text;
      std::string message;
    };
    const std::vector<Row> rows = {
        {"", "f: JSON syntax error at line 1 column 1 (byte 0): "},
        {"{\n  \"a\": 1,\n  \"b\" 2\n}", "f: JSON syntax error at line 3 column 7 (byte 18): "},
        {"{} x", "f: JSON syntax error at line 1 column 4 (byte 3): unexpected characters after the JSON value"},
        {"{\"a\":", "f: JSON syntax error at line 1 column 6 (byte 5): "},
        {"\"\xff\"", "f: JSON syntax error at line 1 column 2 (byte 1): "},
        {std::string(33, '[') + std::string(33, ']'), "f: JSON syntax error at line 1 column 33 (byte 32): "},
    };
    for (const Row& row : rows) {
      CAPTURE(row.text);
      auto v = parse_config_json(row.text, "f");
      REQUIRE_FALSE(v.has_value());
      CHECK(v.error().kind == ErrorKind::Parse);
      CHECK_MESSAGE(v.error().context.starts_with(row.message), std::string(v.error().context));
    }
    auto ok = parse_config_json(std::string(32, '[') + std::string(32, ']') + " \n\t", "f");
    CHECK(ok.has_value());
  }

  TEST_CASE("values: integers exact, strings and keys in parts, duplicate keys keep the last") {
    auto v = parse_config_json(R"({"u":18446744073709551615,"i":-9223372036854775808,"k":1,"k":2,"s":"a\u00e9b"})", "f");
    REQUIRE(v.has_value());
    const auto& o = v->as_object();
    CHECK(o.at("u").as_uint64() == 18446744073709551615ull);
    CHECK(o.at("i").as_int64() == INT64_MIN);
    CHECK(o.at("k").as_int64() == 2);
    CHECK(o.at("s").as_string() == "a\xc3\xa9" "b");
  }
}
