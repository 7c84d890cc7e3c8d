#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>

#include "common/net/netns.h"
#include "test/common/net/net_test_support.h"
#include "test/support/paths.h"
#include "ztunnel/proxy/socket_factory.h"

using namespace ambient;
using namespace ambient::test;
namespace asio = boost::asio;
using asio::ip::tcp;

TEST_SUITE("ztunnel/proxy/socket_factory") {
  TEST_CASE("default factory: listener and socket in our netns, marked" * doctest::skip(!is_root())) {
    if (needs_root("SO_MARK")) return;
    asio::io_context io;
    ztunnel::DefaultSocketFactory f(1337);
    auto acc = f.listen(io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0}, {});
    REQUIRE(acc);
    std::uint32_t mark = 0;
    socklen_t len = sizeof mark;
    REQUIRE(getsockopt(acc->native_handle(), SOL_SOCKET, SO_MARK, &mark, &len) == 0);
    CHECK(mark == 1337);
    auto s = f.socket(io.get_executor(), tcp::v4());
    REQUIRE(s);
    REQUIRE(getsockopt(s->native_handle(), SOL_SOCKET, SO_MARK, &mark, &len) == 0);
    CHECK(mark == 1337);
  }

  TEST_CASE("netns factory: sockets live in the pod's netns, the thread comes back" * doctest::skip(!is_root())) {
    if (needs_root("network namespaces")) return;
    TempNetns ns;
    REQUIRE(ns.ok());
    auto fd = net::open_netns(ns.path());
    REQUIRE(fd);
    auto pod_id = net::netns_id(fd->get());
    auto own_id = net::current_netns_id();
    REQUIRE(pod_id);
    REQUIRE(own_id);
    asio::io_context io;
    ztunnel::NetnsSocketFactory f(std::move(*fd), 1337);
    // Take 127.0.0.1:P in our own netns first; the factory can still bind the same address and port
    // (no SO_REUSEPORT) only because its listener is in the pod's namespace.
    auto here = net::listen(io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0}, {});
    REQUIRE(here);
    const auto port = here->local_endpoint().port();
    auto acc = f.listen(io.get_executor(), {asio::ip::make_address("127.0.0.1"), port}, {});
    CHECK(acc.has_value());
    auto clash = net::listen(io.get_executor(), {asio::ip::make_address("127.0.0.1"), port}, {});
    CHECK_FALSE(clash.has_value());  // in our own netns the port is taken
    auto back = net::current_netns_id();
    REQUIRE(back);
    CHECK(*back == *own_id);
    CHECK_FALSE(*pod_id == *own_id);
  }
}
