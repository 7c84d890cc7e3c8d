// cni/install/dir_watcher.h: parsing inotify's records, and the real watcher on a temp dir.
#include <doctest/doctest.h>

#include <sys/inotify.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "cni/install/dir_watcher.h"
#include "test/support/run_coro.h"
#include "test/support/temp_dir.h"

using namespace ambient;
using namespace ambient::cni::install;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// One record as the kernel writes it: the header, then the name NUL-padded to `padded` bytes.
std::string record(int wd, std::uint32_t mask, const std::string& name, std::uint32_t padded) {
  inotify_event head{};
  head.wd = wd;
  head.mask = mask;
  head.len = padded;
  std::string out(reinterpret_cast<const char*>(&head), sizeof head);
  std::string n = name;
  n.resize(padded, '\0');
  return out + n;
}

// The watcher's next batch, or an empty vector when nothing came within `limit` (a failure, not a wait
// for the assertion: events arrive in microseconds).
asio::awaitable<std::vector<DirEvent>> next_or_timeout(DirWatcher* w, std::chrono::milliseconds limit) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(limit);
  auto next = w->next();  // GCC 12: no temporaries inside the co_await expression
  auto expiry = timer.async_wait(asio::use_awaitable);
  auto r = co_await (std::move(next) || std::move(expiry));
  if (r.index() == 0) {
    auto& batch = std::get<0>(r);
    if (batch) co_return std::move(*batch);
  }
  co_return std::vector<DirEvent>{};
}

}  // namespace

TEST_SUITE("cni/install/dir_watcher") {
  TEST_CASE("parse_inotify_buffer: records, NUL-padded names, empty names, a truncated tail") {
    const std::string buf = record(1, IN_CREATE, "10-calico.conflist", 32) + record(2, IN_DELETE_SELF, "", 0) +
                            record(1, IN_MOVED_TO, "ambient-cni", 16);
    auto events = parse_inotify_buffer(buf);
    REQUIRE(events.size() == 3);
    CHECK(events[0].wd == 1);
    CHECK(events[0].mask == IN_CREATE);
    CHECK(events[0].name == "10-calico.conflist");
    CHECK(events[1].wd == 2);
    CHECK(events[1].name.empty());
    CHECK(events[2].name == "ambient-cni");

    const std::string truncated = buf + record(3, IN_CREATE, "x", 16).substr(0, 20);
    CHECK(parse_inotify_buffer(truncated).size() == 3);
    CHECK(parse_inotify_buffer(std::string(5, '\0')).empty());
  }

  TEST_CASE("describe_inotify_mask") {
    CHECK(describe_inotify_mask(IN_CREATE | IN_ISDIR) == "IN_CREATE|IN_ISDIR");
    CHECK(describe_inotify_mask(IN_CLOSE_WRITE) == "IN_CLOSE_WRITE");
    CHECK(describe_inotify_mask(0) == "0x0");
  }

  TEST_CASE("a watched dir reports writes, renames and deletes by name; a removed dir drops its watch") {
    ambient::test::TempDir tmp("ambient-watch");
    const std::string dir = tmp.path() + "/net.d";
    std::filesystem::create_directory(dir);
    asio::io_context io;
    auto w = DirWatcher::create(io.get_executor());
    REQUIRE(w.has_value());
    DirWatcher* watcher = w->get();
    auto missing = watcher->watch(tmp.path() + "/absent");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().kind == ErrorKind::NotFound);
    CHECK(missing.error().context.find("/absent") != std::string::npos);
    REQUIRE(watcher->watch(dir).has_value());
    REQUIRE(watcher->watch(dir).has_value());  // idempotent
    CHECK(watcher->watching(dir));

    tmp.write("net.d/10-a.conflist", "{}");
    auto batch = ambient::test::run_coro(io, next_or_timeout(watcher, 5s));
    REQUIRE_FALSE(batch.empty());
    CHECK(batch[0].dir == dir);
    CHECK(batch[0].name == "10-a.conflist");
    CHECK((batch[0].mask & IN_CREATE) != 0);

    std::filesystem::rename(dir + "/10-a.conflist", dir + "/10-b.conflist");
    std::filesystem::remove(dir + "/10-b.conflist");
    std::vector<DirEvent> all;
    while (all.size() < 3) {
      auto more = ambient::test::run_coro(io, next_or_timeout(watcher, 5s));
      REQUIRE_FALSE(more.empty());
      all.insert(all.end(), more.begin(), more.end());
    }
    bool moved_from = false, moved_to = false, deleted = false;
    for (const auto& e : all) {
      moved_from |= e.name == "10-a.conflist" && (e.mask & IN_MOVED_FROM) != 0;
      moved_to |= e.name == "10-b.conflist" && (e.mask & IN_MOVED_TO) != 0;
      deleted |= e.name == "10-b.conflist" && (e.mask & IN_DELETE) != 0;
    }
    CHECK(moved_from);
    CHECK(moved_to);
    CHECK(deleted);

    std::filesystem::remove(dir);
    bool ignored = false;
    while (!ignored) {
      auto more = ambient::test::run_coro(io, next_or_timeout(watcher, 5s));
      REQUIRE_FALSE(more.empty());
      for (const auto& e : more) ignored |= (e.mask & IN_IGNORED) != 0 && e.dir == dir;
    }
    CHECK_FALSE(watcher->watching(dir));
    watcher->close();
    auto closed = ambient::test::run_coro(io, watcher->next());
    REQUIRE_FALSE(closed.has_value());
    CHECK(closed.error().kind == ErrorKind::Cancelled);
  }
}
