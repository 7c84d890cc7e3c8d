#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>

#include "common/base/config.h"
#include "common/base/log.h"

using namespace ambient;
using namespace std::chrono_literals;

TEST_SUITE("common/base/config") {
  TEST_CASE("durations") {
    struct Row { const char* in; std::chrono::nanoseconds want; };
    for (const Row& row : {Row{"5s", 5s}, Row{"100ms", 100ms}, Row{"1m30s", 90s}, Row{"24h", 24h},
                           Row{"1.5s", 1500ms}, Row{"10us", 10us}, Row{"7ns", 7ns}, Row{" 2m ", 2min}}) {
      CAPTURE(row.in);
      auto d = config::parse_duration(row.in);
      REQUIRE(d);
      CHECK(*d == row.want);
    }
    for (const char* bad : {"", "5", "5x", "s", "-1s", "1s2"}) {
      CAPTURE(bad);
      auto d = config::parse_duration(bad);
      REQUIRE_FALSE(d);
      CHECK(d.error().kind == ErrorKind::InvalidArgument);
    }
  }
  TEST_CASE("sizes") {
    struct Row { const char* in; std::uint64_t want; };
    for (const Row& row : {Row{"4Mi", 4u << 20}, Row{"16Ki", 16u << 10}, Row{"1Gi", 1u << 30}, Row{"4M", 4000000},
                           Row{"1k", 1000}, Row{"65536", 65536}, Row{"0.5Ki", 512}}) {
      CAPTURE(row.in);
      auto s = config::parse_size(row.in);
      REQUIRE(s);
      CHECK(*s == row.want);
    }
    for (const char* bad : {"", "Mi", "4Xi", "0.3"}) {
      CAPTURE(bad);
      CHECK_FALSE(config::parse_size(bad));
    }
  }
  TEST_CASE("booleans and integers") {
    CHECK(*config::parse_bool("TRUE"));
    CHECK_FALSE(*config::parse_bool("off"));
    CHECK_FALSE(config::parse_bool("maybe"));
    CHECK(*config::parse_int("100", 1, 1000) == 100);
    CHECK_FALSE(config::parse_int("0", 1, 1000));
    CHECK_FALSE(config::parse_int("12a", 1, 1000));
  }
  TEST_CASE("options: flag beats env beats default, errors name the source") {
    setenv("AMBIENT_TEST_WINDOW", "8Mi", 1);
    setenv("AMBIENT_TEST_TIMEOUT", "nonsense", 1);
    config::Options o;
    o.add({"window", "AMBIENT_TEST_WINDOW", "4Mi", "stream window"})
        .add({"streams", "AMBIENT_TEST_STREAMS_UNSET", "100", "max streams"})
        .add({"timeout", "AMBIENT_TEST_TIMEOUT", "5s", "timeout"})
        .add({"verbose", "", "false", "chatty", true});
    const char* argv[] = {"prog", "--streams=7", "--verbose", "pos1", "--window", "1Mi"};
    REQUIRE(o.parse(6, argv));
    CHECK(*o.size("window") == (1u << 20));
    CHECK(o.source("window") == "flag");
    CHECK(*o.integer("streams", 1, 1000) == 7);
    CHECK(*o.boolean("verbose"));
    REQUIRE(o.positional().size() == 1);
    auto t = o.duration("timeout");
    REQUIRE_FALSE(t);
    CHECK(t.error().context.find("AMBIENT_TEST_TIMEOUT") != std::string::npos);
    config::Options o2;
    o2.add({"window", "", "4Mi", "w"});
    const char* bad[] = {"prog", "--nope=1"};
    auto r = o2.parse(2, bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().context.find("--nope") != std::string::npos);
    unsetenv("AMBIENT_TEST_WINDOW");
    unsetenv("AMBIENT_TEST_TIMEOUT");
  }
  TEST_CASE("log levels change at runtime") {
    REQUIRE(log::init("info"));
    REQUIRE(log::set_level("debug"));
    CHECK(log::level_name() == "debug");
    CHECK_FALSE(log::set_level("loud"));
    REQUIRE(log::set_level("WARNING"));
    CHECK(log::level_name() == "warning");
  }
}
