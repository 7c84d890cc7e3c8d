#include <doctest/doctest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <tuple>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/net/fd.h"
#include "common/net/netns.h"
#include "common/net/socket_options.h"
#include "common/net/tcp_stream.h"
#include "test/common/net/net_test_support.h"

using namespace ambient;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// Reads an int option back through the kernel, independent of the code under test.
int get_int(int fd, int level, int option) {
  int v = -1;
  socklen_t len = sizeof v;
  REQUIRE(::getsockopt(fd, level, option, &v, &len) == 0);
  return v;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_SUITE("common/net/socket_options") {
  TEST_CASE("errors name the option and the errno text") {
    auto mark = net::set_mark(-1, 1337);
    REQUIRE_FALSE(mark);
    CHECK(mark.error().kind == ErrorKind::Io);
    CHECK(mark.error().code == EBADF);
    CAPTURE(mark.error().context);
    CHECK(contains(mark.error().context, "SO_MARK=1337"));
    CHECK(contains(mark.error().context, "Bad file descriptor"));

    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    net::UniqueFd r(pipe_fds[0]), w(pipe_fds[1]);
    auto nodelay = net::set_nodelay(r.get());
    REQUIRE_FALSE(nodelay);
    CHECK(nodelay.error().code == ENOTSOCK);
    CHECK(contains(nodelay.error().context, "TCP_NODELAY"));
    CHECK(contains(nodelay.error().context, "Socket operation on non-socket"));

    auto od = net::original_destination(r.get());
    REQUIRE_FALSE(od);
    CHECK(contains(od.error().context, "SO_ORIGINAL_DST"));
    CHECK_FALSE(net::socket_family(r.get()));
  }

  TEST_CASE("keepalive, nodelay and freebind read back") {
    asio::io_context io;
    for (auto proto : {tcp::v4(), tcp::v6()}) {
      CAPTURE(proto.family());
      tcp::socket s(io);
      s.open(proto);
      const int fd = s.native_handle();
      const auto family = net::socket_family(fd);
      REQUIRE(family);
      CHECK(*family == (proto == tcp::v4() ? net::IpFamily::V4 : net::IpFamily::V6));

      REQUIRE(net::set_keepalive(fd, 180s, 60s, 9));
      CHECK(get_int(fd, SOL_SOCKET, SO_KEEPALIVE) == 1);
      CHECK(get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 180);
      CHECK(get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 60);
      CHECK(get_int(fd, IPPROTO_TCP, TCP_KEEPCNT) == 9);

      REQUIRE(net::set_nodelay(fd));
      CHECK(get_int(fd, IPPROTO_TCP, TCP_NODELAY) != 0);
      REQUIRE(net::set_nodelay(fd, false));
      CHECK(get_int(fd, IPPROTO_TCP, TCP_NODELAY) == 0);

      REQUIRE(net::set_freebind(fd, *family));
      if (*family == net::IpFamily::V4) {
        CHECK(get_int(fd, SOL_IP, IP_FREEBIND) == 1);
      } else {
        CHECK(get_int(fd, SOL_IPV6, 78 /* IPV6_FREEBIND */) == 1);
      }
    }
  }

  TEST_CASE("keepalive refuses values the kernel would clamp or reject") {
    asio::io_context io;
    tcp::socket s(io);
    s.open(tcp::v4());
    for (auto [idle, interval, probes] : {std::tuple{0s, 1s, 1}, std::tuple{1s, 32768s, 1}, std::tuple{1s, 1s, 0},
                                          std::tuple{1s, 1s, 128}}) {
      auto r = net::set_keepalive(s.native_handle(), idle, interval, probes);
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::InvalidArgument);
    }
    CHECK(get_int(s.native_handle(), SOL_SOCKET, SO_KEEPALIVE) == 0);  // nothing was half-applied
  }

  TEST_CASE("SO_REUSEPORT lets two listeners bind the same port") {
    asio::io_context io;
    auto first = net::listen(io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0}, {.reuseport = true});
    REQUIRE(first);
    const auto ep = first->local_endpoint();
    CHECK(get_int(first->native_handle(), SOL_SOCKET, SO_REUSEPORT) == 1);

    auto second = net::listen(io.get_executor(), ep, {.reuseport = true});
    REQUIRE(second);
    CHECK(second->local_endpoint() == ep);

    // Without it on the newcomer, the port is taken.
    auto third = net::listen(io.get_executor(), ep);
    REQUIRE_FALSE(third);
    CHECK(third.error().code == EADDRINUSE);
    CHECK(contains(third.error().context, "bind()"));
  }

  TEST_CASE("SO_MARK and IP(V6)_TRANSPARENT read back" * doctest::skip(test::needs_root("socket_options: SO_MARK, IP_TRANSPARENT"))) {
    asio::io_context io;
    for (auto proto : {tcp::v4(), tcp::v6()}) {
      CAPTURE(proto.family());
      tcp::socket s(io);
      s.open(proto);
      const int fd = s.native_handle();
      REQUIRE(net::set_mark(fd, 1337));
      CHECK(get_int(fd, SOL_SOCKET, SO_MARK) == 1337);
      REQUIRE(net::set_mark(fd, 0xfffff000u));  // the whole 32 bits survive the int round trip
      CHECK(static_cast<std::uint32_t>(get_int(fd, SOL_SOCKET, SO_MARK)) == 0xfffff000u);

      if (proto == tcp::v4()) {
        REQUIRE(net::set_transparent(fd, net::IpFamily::V4));
        CHECK(get_int(fd, SOL_IP, IP_TRANSPARENT) == 1);
      } else {
        REQUIRE(net::set_transparent(fd, net::IpFamily::V6));
        CHECK(get_int(fd, SOL_IPV6, IPV6_TRANSPARENT) == 1);
      }
    }
  }

  TEST_CASE("original_destination after an iptables REDIRECT, IPv4 and IPv6" *
            doctest::skip(test::needs_root("socket_options: SO_ORIGINAL_DST with iptables in a netns"))) {
    test::TempNetns ns;
    REQUIRE(ns.ok());
    auto nsfd = net::open_netns(ns.path());
    REQUIRE(nsfd);
    asio::io_context io;

    struct Family {
      const char* name;
      const char* tool;      // iptables or ip6tables (nft or legacy, whichever is installed)
      const char* loopback;  // address the client dials and the listener binds
      const char* match;     // -d of the REDIRECT rule
    };
    for (const Family fam : {Family{"IPv4", "iptables", "127.0.0.1", "127.0.0.0/8"},
                             Family{"IPv6", "ip6tables", "::1", "::1/128"}}) {
      CAPTURE(fam.name);
      const bool v6 = std::string(fam.name) == "IPv6";
      const auto addr = asio::ip::make_address(fam.loopback);
      const auto proto = v6 ? tcp::v6() : tcp::v4();

      auto listener = net::in_netns(nsfd->get(), [&] { return net::listen(io.get_executor(), {addr, 0}); });
      if (!listener && v6) {
        MESSAGE("SKIPPED: IPv6 SO_ORIGINAL_DST: cannot listen on [::1] in the netns: " << listener.error().message());
        continue;
      }
      REQUIRE(listener);
      const auto port = listener->local_endpoint().port();
      const std::uint16_t dialed = port == 18080 ? 18081 : 18080;  // fresh netns: nothing listens there
      const int rc = ns.exec({fam.tool, "-w", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", fam.match, "--dport",
                              std::to_string(dialed), "-j", "REDIRECT", "--to-ports", std::to_string(port)});
      if (rc != 0 && v6) {
        MESSAGE("SKIPPED: IPv6 SO_ORIGINAL_DST: `ip6tables -t nat -A OUTPUT ... -j REDIRECT` exited with " << rc
                                                                                                      << " (no IPv6 nat)");
        continue;
      }
      REQUIRE(rc == 0);

      // The client socket must be created in the netns (that is where the rule is); it may connect
      // from anywhere afterwards.
      auto make_client = [&] {
        tcp::socket s(io);
        s.open(proto);
        return s;
      };
      auto redirected = net::in_netns(nsfd->get(), make_client);
      REQUIRE(redirected);
      boost::system::error_code ec;
      redirected->connect({addr, dialed}, ec);
      REQUIRE_FALSE(ec);
      tcp::socket accepted = listener->accept(ec);
      REQUIRE_FALSE(ec);
      CHECK(accepted.local_endpoint() == tcp::endpoint(addr, port));  // the REDIRECT happened
      auto od = net::original_destination(accepted.native_handle());
      REQUIRE(od);
      CHECK(*od == tcp::endpoint(addr, dialed));

      // Not redirected: conntrack tracks this netns (its nat table is in use), so the original
      // destination is simply where the client connected.
      auto direct = net::in_netns(nsfd->get(), make_client);
      REQUIRE(direct);
      direct->connect({addr, port}, ec);
      REQUIRE_FALSE(ec);
      tcp::socket accepted_direct = listener->accept(ec);
      REQUIRE_FALSE(ec);
      auto od_direct = net::original_destination(accepted_direct.native_handle());
      REQUIRE(od_direct);
      CHECK(*od_direct == tcp::endpoint(addr, port));
    }
  }
}
