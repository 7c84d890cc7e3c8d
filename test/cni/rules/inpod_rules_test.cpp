// Root-only: InpodRules against the real iptables / nft / ip in network namespaces created for the test.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>
#include <vector>

#include "cni/rules/inpod_rules.h"
#include "common/net/fd.h"
#include "common/net/netns.h"
#include "common/net/socket_options.h"
#include "test/cni/rules/rules_test_support.h"

using namespace ambient;
using namespace ambient::cni;
using ambient::cni::rules_test::TempNetns;

namespace {

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

// A foreign rule the pod already had: must survive install and remove untouched.
void seed_foreign_rules(const TempNetns& ns, Backend backend) {
  if (backend == Backend::Iptables) {
    REQUIRE(ns.exec({"iptables", "-t", "nat", "-N", "APP_CHAIN"}) == 0);
    REQUIRE(ns.exec({"iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "9999", "-j", "APP_CHAIN"}) == 0);
  } else {
    REQUIRE(ns.exec({"nft", "-f", "-"}, "add table inet app\nadd chain inet app out { type filter hook output "
                                        "priority 0 ; }\nadd rule inet app out tcp dport 9999 counter\n") == 0);
  }
}

// Tampers with one of our filter rules.
void delete_one_rule(const TempNetns& ns, Backend backend) {
  if (backend == Backend::Iptables) {
    REQUIRE(ns.exec({"iptables", "-t", "nat", "-D", "ISTIO_OUTPUT", "-p", "tcp", "-m", "mark", "--mark", "0x111/0xfff",
                     "-j", "ACCEPT"}) == 0);
  } else {
    REQUIRE(ns.exec({"nft", "flush", "chain", "inet", "istio-ambient-nat", "istio-output"}) == 0);
  }
}

bool has_line_starting(const std::vector<std::string>& lines, std::string_view prefix) {
  for (const auto& line : lines) {
    if (line.starts_with(prefix)) return true;
  }
  return false;
}

// Full lifecycle in one fresh netns: the state checks of the brief.
void lifecycle(Backend backend, const RuleOptions& options) {
  TempNetns ns;
  REQUIRE(ns.ok());
  auto fd = net::open_netns(ns.path());
  REQUIRE(fd);
  seed_foreign_rules(ns, backend);
  const auto before = rules_test::snapshot(ns);
  InpodRules rules(backend);

  auto absent = rules.verify(fd->get(), options);
  REQUIRE_MESSAGE(absent, (absent ? "" : absent.error().message()));
  CHECK(absent->presence == RulesPresence::Absent);

  auto installed = rules.install(fd->get(), options);
  REQUIRE_MESSAGE(installed, (installed ? "" : installed.error().message()));
  const auto after_install = rules_test::snapshot(ns);
  CHECK(after_install != before);
  auto exact = rules.verify(fd->get(), options);
  REQUIRE(exact);
  CHECK_MESSAGE(exact->presence == RulesPresence::Exact, joined(exact->differences));
  CHECK(exact->differences.empty());

  // Idempotent: a second install changes nothing.
  REQUIRE(rules.install(fd->get(), options));
  CHECK(joined(rules_test::snapshot(ns)) == joined(after_install));

  // Filter drift is reported and repaired.
  delete_one_rule(ns, backend);
  auto drifted = rules.verify(fd->get(), options);
  REQUIRE(drifted);
  CHECK(drifted->presence == RulesPresence::Drifted);
  CHECK_MESSAGE(has_line_starting(drifted->differences, "missing: "), joined(drifted->differences));
  REQUIRE(rules.install(fd->get(), options));
  CHECK(joined(rules_test::snapshot(ns)) == joined(after_install));
  CHECK(rules.verify(fd->get(), options)->presence == RulesPresence::Exact);

  // Routing drift too.
  REQUIRE(ns.exec({"ip", "route", "del", "local", "0.0.0.0/0", "dev", "lo", "table", "100"}) == 0);
  auto route_drift = rules.verify(fd->get(), options);
  REQUIRE(route_drift);
  CHECK(route_drift->presence == RulesPresence::Drifted);
  CHECK_MESSAGE(has_line_starting(route_drift->differences, "missing: ipv4 route: "), joined(route_drift->differences));
  REQUIRE(rules.install(fd->get(), options));
  CHECK(joined(rules_test::snapshot(ns)) == joined(after_install));

  // An extra copy of our jump (iptables) is drift as well, and remove() deletes every copy.
  if (backend == Backend::Iptables) {
    REQUIRE(ns.exec({"iptables", "-t", "nat", "-A", "OUTPUT", "-j", "ISTIO_OUTPUT"}) == 0);
    CHECK(rules.verify(fd->get(), options)->presence == RulesPresence::Drifted);
  }

  auto removed = rules.remove(fd->get(), options);
  REQUIRE_MESSAGE(removed, (removed ? "" : removed.error().message()));
  CHECK(joined(rules_test::snapshot(ns)) == joined(before));
  CHECK(rules.verify(fd->get(), options)->presence == RulesPresence::Absent);
  CHECK(rules.remove(fd->get(), options));  // nothing left to remove: still fine
  CHECK(joined(rules_test::snapshot(ns)) == joined(before));
}

RuleOptions every_variant() {
  RuleOptions o;
  o.ipv6 = true;
  o.virtual_interfaces = {"veth-virt0", "net1"};
  return o;
}

// --- functional check ---------------------------------------------------------------------------------

constexpr const char* kRemoteIp = "10.99.0.2";  // on the veth's subnet, not local: routed out of the pod
constexpr std::uint16_t kRemotePort = 8080;

sockaddr_in v4(const char* ip, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

Result<net::UniqueFd> listen_on(int netns_fd, const char* ip, std::uint16_t port) {
  return net::in_netns(netns_fd, [&]() -> Result<net::UniqueFd> {
    net::UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s.valid()) return errorf(ErrorKind::Io, "socket: errno {}", errno);
    int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto addr = v4(ip, port);
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(s.get(), 16) != 0) {
      return errorf(ErrorKind::Io, "bind/listen {}:{}: errno {}", ip, port, errno);
    }
    return s;
  });
}

// Connects from inside the netns (optionally with SO_MARK); true if the handshake completed within `wait_ms`.
bool connect_from(int netns_fd, const char* ip, std::uint16_t port, int wait_ms, std::uint32_t mark = 0) {
  auto client = net::in_netns(netns_fd, [] { return net::UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)); });
  if (!client || !client->valid()) return false;
  if (mark != 0 && !net::set_mark(client->get(), mark)) return false;
  auto addr = v4(ip, port);
  if (::connect(client->get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) return false;
  pollfd p{client->get(), POLLOUT, 0};
  if (::poll(&p, 1, wait_ms) != 1) return false;
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(client->get(), SOL_SOCKET, SO_ERROR, &err, &len);
  return err == 0;
}

// The connection waiting on `listener`, if one arrives within wait_ms.
net::UniqueFd accept_within(int listener, int wait_ms) {
  pollfd p{listener, POLLIN, 0};
  if (::poll(&p, 1, wait_ms) != 1) return {};
  return net::UniqueFd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
}

void outbound_redirect_reaches_15001(Backend backend) {
  TempNetns ns;
  REQUIRE(ns.ok());
  REQUIRE(ns.exec({"ip", "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b"}) == 0);
  REQUIRE(ns.exec({"ip", "addr", "add", "10.99.0.1/24", "dev", "veth-a"}) == 0);
  REQUIRE(ns.exec({"ip", "link", "set", "veth-a", "up"}) == 0);
  auto fd = net::open_netns(ns.path());
  REQUIRE(fd);
  RuleOptions options;
  InpodRules rules(backend);
  auto installed = rules.install(fd->get(), options);
  REQUIRE_MESSAGE(installed, (installed ? "" : installed.error().message()));

  auto listener = listen_on(fd->get(), "127.0.0.1", options.outbound_port);
  REQUIRE(listener);

  CHECK(connect_from(fd->get(), kRemoteIp, kRemotePort, 2000));
  auto accepted = accept_within(listener->get(), 2000);
  REQUIRE(accepted.valid());
  auto original = net::original_destination(accepted.get());
  REQUIRE(original);
  CHECK(original->address().to_string() == kRemoteIp);
  CHECK(original->port() == kRemotePort);

  // ztunnel's own traffic (packet mark 0x539) is left alone.
  CHECK_FALSE(connect_from(fd->get(), kRemoteIp, kRemotePort, 300, options.packet_mark));
  CHECK_FALSE(accept_within(listener->get(), 100).valid());

  REQUIRE(rules.remove(fd->get(), options));
  CHECK_FALSE(connect_from(fd->get(), kRemoteIp, kRemotePort, 300));
  CHECK_FALSE(accept_within(listener->get(), 100).valid());
}

}  // namespace

TEST_SUITE("cni/rules/inpod_rules") {
  TEST_CASE("invalid options are refused before anything runs") {
    InpodRules rules(Backend::Iptables);
    RuleOptions bad;
    bad.outbound_port = 0;
    for (auto r : {rules.install(-1, bad), rules.remove(-1, bad)}) {
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::InvalidArgument);
      CHECK(r.error().context.find("outbound_port") != std::string::npos);
    }
    auto v = rules.verify(-1, bad);
    REQUIRE_FALSE(v);
    CHECK(v.error().kind == ErrorKind::InvalidArgument);
  }

  TEST_CASE("iptables: install, idempotence, drift repair, remove back to the pre-state" *
            doctest::skip(rules_test::needs_root("inpod_rules: iptables in a named netns"))) {
    SUBCASE("defaults") { lifecycle(Backend::Iptables, RuleOptions{}); }
    SUBCASE("ipv6, virtual interfaces") { lifecycle(Backend::Iptables, every_variant()); }
    SUBCASE("DNS off, ingress mode") {
      RuleOptions o;
      o.dns_capture = false;
      o.ingress_mode = true;
      lifecycle(Backend::Iptables, o);
    }
  }

  TEST_CASE("nftables: install, idempotence, drift repair, remove back to the pre-state" *
            doctest::skip(rules_test::needs_root("inpod_rules: nft in a named netns"))) {
    SUBCASE("defaults") { lifecycle(Backend::Nftables, RuleOptions{}); }
    SUBCASE("ipv6, virtual interfaces") { lifecycle(Backend::Nftables, every_variant()); }
    SUBCASE("DNS off, ingress mode") {
      RuleOptions o;
      o.dns_capture = false;
      o.ingress_mode = true;
      lifecycle(Backend::Nftables, o);
    }
  }

  TEST_CASE("errors name the command, exit code and stderr" *
            doctest::skip(rules_test::needs_root("inpod_rules: error reporting"))) {
    InpodRules rules(Backend::Iptables);
    // An fd that is not a netns: the child's setns fails.
    net::UniqueFd not_netns(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    auto r = rules.install(not_netns.get(), RuleOptions{});
    REQUIRE_FALSE(r);
    CHECK(r.error().context.find("install in-pod rules (iptables) in netns fd") != std::string::npos);
    CHECK(r.error().context.find("setns") != std::string::npos);

    // A tool that exits non-zero: the error names the command, the exit code and stderr.
    rules_test::TempNetns ns;
    REQUIRE(ns.ok());
    auto fd = net::open_netns(ns.path());
    REQUIRE(fd);
    auto failed =
        run_checked(fd->get(), {{"ip", "route", "del", "local", "192.0.2.1/32", "dev", "lo", "table", "100"}, {}});
    REQUIRE_FALSE(failed);
    CAPTURE(failed.error().context);
    CHECK(failed.error().context.find("`ip route del local 192.0.2.1/32 dev lo table 100`") != std::string::npos);
    CHECK(failed.error().context.find("exited with 2: ") != std::string::npos);
  }

  TEST_CASE("functional: outbound TCP lands on 15001 with SO_ORIGINAL_DST; not after remove" *
            doctest::skip(rules_test::needs_root("inpod_rules: redirect in a named netns"))) {
    SUBCASE("iptables") { outbound_redirect_reaches_15001(Backend::Iptables); }
    SUBCASE("nftables") { outbound_redirect_reaches_15001(Backend::Nftables); }
  }
}
