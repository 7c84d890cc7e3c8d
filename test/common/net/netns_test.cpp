#include <doctest/doctest.h>

#include <cerrno>
#include <future>
#include <optional>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/net/netns.h"
#include "common/net/tcp_stream.h"
#include "test/common/net/net_test_support.h"

using namespace ambient;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

const auto kLocalhost = asio::ip::make_address("127.0.0.1");

// Accepts without blocking: the connection queued on `acc`, or nullopt if none is.
std::optional<tcp::socket> try_accept(tcp::acceptor& acc) {
  acc.non_blocking(true);
  boost::system::error_code ec;
  tcp::socket s = acc.accept(ec);
  if (ec) return std::nullopt;
  return s;
}

}  // namespace

TEST_SUITE("common/net/netns") {
  TEST_CASE("ids: fd and path of the same netns compare equal") {
    auto current = net::current_netns_id();
    REQUIRE(current);
    auto fd = net::open_netns("/proc/self/task/" + std::to_string(gettid()) + "/ns/net");
    REQUIRE(fd);
    auto by_fd = net::netns_id(fd->get());
    REQUIRE(by_fd);
    CHECK(*by_fd == *current);
    auto init = net::netns_id(std::string("/proc/1/ns/net"));
    if (init) CHECK((*init == *current) == (*init == *by_fd));  // consistent, whatever netns we run in
  }

  TEST_CASE("errors: a missing path is NotFound and names it; a bad fd leaves the thread where it was") {
    const auto before = net::current_netns_id();
    REQUIRE(before);
    auto missing = net::NetnsGuard::enter(std::string("/var/run/netns/amb-test-does-not-exist"));
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == ErrorKind::NotFound);
    CHECK(missing.error().context.find("amb-test-does-not-exist") != std::string::npos);

    bool ran = false;
    auto r = net::in_netns(-1, [&] { ran = true; });
    REQUIRE_FALSE(r);
    CHECK(r.error().code == EBADF);
    CHECK(r.error().context.find("setns") != std::string::npos);
    CHECK_FALSE(ran);
    CHECK(*net::current_netns_id() == *before);
  }

  TEST_CASE("NetnsGuard: sockets created inside live in the netns; the thread comes back" *
            doctest::skip(test::needs_root("netns: NetnsGuard with ip netns add"))) {
    test::TempNetns ns;
    REQUIRE(ns.ok());
    const auto original = net::current_netns_id();
    const auto target = net::netns_id(ns.path());
    REQUIRE(original);
    REQUIRE(target);
    CHECK(*target != *original);

    asio::io_context io;
    // Host listener on some port P.
    auto host_listener = net::listen(io.get_executor(), {kLocalhost, 0});
    REQUIRE(host_listener);
    const tcp::endpoint p = host_listener->local_endpoint();

    // Started before entering (a thread created while inside would inherit the netns); reports its
    // netns when told to.
    std::promise<void> go;
    std::promise<Result<net::NetnsId>> other_promise;
    auto other_id = other_promise.get_future();
    std::thread bystander([&, go_future = go.get_future()]() mutable {
      go_future.wait();
      other_promise.set_value(net::current_netns_id());
    });

    std::optional<tcp::acceptor> inner_listener;
    tcp::socket inner_client(io);
    {
      auto guard = net::NetnsGuard::enter(ns.path());
      REQUIRE(guard);
      CHECK(*net::current_netns_id() == *target);
      // setns is per thread: a thread started before the switch stays where it was.
      go.set_value();
      auto other = other_id.get();
      bystander.join();
      REQUIRE(other);
      CHECK(*other == *original);

      // Same address and port as the host listener, no SO_REUSEPORT: only possible in another netns.
      auto l = net::listen(io.get_executor(), p);
      REQUIRE(l);
      inner_listener.emplace(std::move(*l));
      inner_client.open(tcp::v4());  // created inside, used after leaving
    }
    CHECK(*net::current_netns_id() == *original);

    tcp::socket host_client(io);
    host_client.open(tcp::v4());
    // Both connect to 127.0.0.1:P from the host thread; each reaches the listener of its own netns.
    boost::system::error_code ec;
    inner_client.connect(p, ec);
    REQUIRE_FALSE(ec);
    host_client.connect(p, ec);
    REQUIRE_FALSE(ec);

    auto at_inner = try_accept(*inner_listener);
    auto at_host = try_accept(*host_listener);
    REQUIRE(at_inner);
    REQUIRE(at_host);
    CHECK(at_inner->remote_endpoint() == inner_client.local_endpoint());
    CHECK(at_host->remote_endpoint() == host_client.local_endpoint());
    CHECK_FALSE(try_accept(*inner_listener));  // exactly one connection each
    CHECK_FALSE(try_accept(*host_listener));
  }

  TEST_CASE("in_netns and moved guards" * doctest::skip(test::needs_root("netns: in_netns with ip netns add"))) {
    test::TempNetns ns;
    REQUIRE(ns.ok());
    const auto original = net::current_netns_id();
    REQUIRE(original);
    auto fd = net::open_netns(ns.path());
    REQUIRE(fd);
    const auto target = net::netns_id(fd->get());
    REQUIRE(target);

    auto inside = net::in_netns(fd->get(), [] { return net::current_netns_id(); });  // Result<T> passes through
    REQUIRE(inside);
    CHECK(*inside == *target);
    CHECK(*net::current_netns_id() == *original);

    auto value = net::in_netns(fd->get(), [] { return 42; });  // plain T is wrapped
    REQUIRE(value);
    CHECK(*value == 42);

    auto failed = net::in_netns(fd->get(), []() -> Result<int> { return errorf(ErrorKind::Internal, "inner"); });
    REQUIRE_FALSE(failed);
    CHECK(failed.error().context == "inner");
    CHECK(*net::current_netns_id() == *original);

    {
      auto g = net::NetnsGuard::enter(fd->get());
      REQUIRE(g);
      std::optional<net::NetnsGuard> moved;
      moved.emplace(std::move(*g));
      { auto dropped = std::move(g); }  // the moved-from guard restores nothing
      CHECK(*net::current_netns_id() == *target);
      moved.reset();
      CHECK(*net::current_netns_id() == *original);
    }
  }
}
