#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "cni/rules/command_runner.h"
#include "common/net/netns.h"
#include "test/cni/rules/rules_test_support.h"

using namespace ambient;
using namespace ambient::cni;

TEST_SUITE("cni/rules/command_runner") {
  TEST_CASE("exit code, stdout and stderr are collected") {
    auto r = run_in_netns(-1, {{"sh", "-c", "echo out; echo err >&2; exit 3"}, {}});
    REQUIRE(r);
    CHECK(r->exit_code == 3);
    CHECK(r->out == "out\n");
    CHECK(r->err == "err\n");
  }

  TEST_CASE("stdin text reaches the program, also when larger than a pipe buffer") {
    std::string big;
    for (int i = 0; i < 40000; ++i) big += "line " + std::to_string(i) + "\n";  // ~500 KB
    auto r = run_in_netns(-1, {{"cat"}, big});
    REQUIRE(r);
    CHECK(r->exit_code == 0);
    CHECK(r->out == big);
    auto empty = run_in_netns(-1, {{"cat"}, {}});
    REQUIRE(empty);
    CHECK(empty->out.empty());
  }

  TEST_CASE("the environment has LC_ALL=C") {
    auto r = run_in_netns(-1, {{"sh", "-c", "echo $LC_ALL"}, {}});
    REQUIRE(r);
    CHECK(r->out == "C\n");
  }

  TEST_CASE("bounds: output limit, stdin limit, timeout") {
    CommandLimits small;
    small.max_output_bytes = 4096;
    auto chatty = run_in_netns(-1, {{"head", "-c", "100000", "/dev/zero"}, {}}, small);
    REQUIRE_FALSE(chatty);
    CHECK(chatty.error().kind == ErrorKind::ResourceExhausted);
    CHECK(chatty.error().context.find("head -c 100000 /dev/zero") != std::string::npos);

    auto huge_stdin = run_in_netns(-1, {{"cat"}, std::string(kMaxStdinBytes + 1, 'x')});
    REQUIRE_FALSE(huge_stdin);
    CHECK(huge_stdin.error().kind == ErrorKind::ResourceExhausted);

    CommandLimits quick;
    quick.timeout = std::chrono::milliseconds(200);
    const auto start = std::chrono::steady_clock::now();
    auto slow = run_in_netns(-1, {{"sleep", "5"}, {}}, quick);
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(slow);
    CHECK(slow.error().kind == ErrorKind::Timeout);
    CHECK(took < std::chrono::seconds(2));
  }

  TEST_CASE("errors: unknown program, not a netns fd, non-zero exit through run_checked") {
    auto missing = run_in_netns(-1, {{"ambient-no-such-program"}, {}});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == ErrorKind::NotFound);
    CHECK(missing.error().context.find("ambient-no-such-program") != std::string::npos);

    net::UniqueFd not_netns(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(not_netns.valid());
    auto bad = run_in_netns(not_netns.get(), {{"true"}, {}});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == ErrorKind::Io);
    CHECK(bad.error().context.find("setns") != std::string::npos);

    auto failed = run_checked(-1, {{"sh", "-c", "echo 'it broke' >&2; exit 4"}, {}});
    REQUIRE_FALSE(failed);
    CHECK(failed.error().kind == ErrorKind::Io);
    CHECK(failed.error().code == 4);
    CHECK(failed.error().context.find("`sh -c") != std::string::npos);
    CHECK(failed.error().context.find("exited with 4: it broke") != std::string::npos);
  }

  TEST_CASE("concurrent use from several threads") {
    std::vector<std::thread> threads;
    std::atomic<int> good{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 10; ++i) {
          const auto text = std::to_string(t) + ":" + std::to_string(i);
          auto r = run_in_netns(-1, {{"cat"}, text});
          if (r && r->exit_code == 0 && r->out == text) ++good;
        }
      });
    }
    for (auto& thread : threads) thread.join();
    CHECK(good == 40);
  }

  TEST_CASE("runs inside the given netns; the caller's thread stays put" *
            doctest::skip(rules_test::needs_root("command_runner: setns into a named netns"))) {
    rules_test::TempNetns ns;
    REQUIRE(ns.ok());
    auto fd = net::open_netns(ns.path());
    REQUIRE(fd);
    auto target = net::netns_id(fd->get());
    REQUIRE(target);
    const auto before = net::current_netns_id();
    auto r = run_checked(fd->get(), {{"readlink", "/proc/self/ns/net"}, {}});
    REQUIRE(r);
    CHECK(r->out == "net:[" + std::to_string(target->ino) + "]\n");
    CHECK(*net::current_netns_id() == *before);
  }
}
