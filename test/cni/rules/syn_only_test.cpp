// RuleOptions::syn_only: enrolling a running pod must not break the connections it already has. A pod netns
// without nat rules has no conntrack; once the rules exist, conntrack picks old connections up mid-stream
// as new ones and the nat REDIRECT would send their next packet to ztunnel (the peer answers with a reset).
// With syn_only only connections that begin with a SYN are redirected.
#include <doctest/doctest.h>

#include "cni/rules/inpod_rules.h"
#include "cni/rules/iptables_rules.h"
#include "cni/rules/nftables_rules.h"
#include "common/net/netns.h"
#include "test/cni/rules/rules_test_support.h"
#include "test/support/netns_echo.h"

using namespace ambient;
using namespace ambient::cni;
using namespace ambient::test;

namespace {

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

// A connection from `client` to an echo server in `server` survives installing the rules in `client`?
bool established_connection_survives(Backend backend, bool syn_only) {
  rules_test::TempNetns client, server;
  REQUIRE((client.ok() && server.ok()));
  const std::string a = "sy" + std::to_string(getpid() % 100000) + "a", b = "sy" + std::to_string(getpid() % 100000) + "b";
  REQUIRE(run_command({"ip", "link", "add", a, "netns", client.name(), "type", "veth", "peer", "name", b, "netns", server.name()}) == 0);
  REQUIRE(client.exec({"ip", "addr", "add", "10.98.0.1/24", "dev", a}) == 0);
  REQUIRE(server.exec({"ip", "addr", "add", "10.98.0.2/24", "dev", b}) == 0);
  REQUIRE(client.exec({"ip", "link", "set", a, "up"}) == 0);
  REQUIRE(server.exec({"ip", "link", "set", b, "up"}) == 0);
  auto cfd = net::open_netns(client.path());
  auto sfd = net::open_netns(server.path());
  REQUIRE((cfd && sfd));
  NetnsEchoServer echo(sfd->get(), "10.98.0.2", 8080);
  REQUIRE(echo.ok());
  NetnsClient old_connection(cfd->get(), "10.98.0.2", 8080, std::chrono::seconds(2));
  REQUIRE(old_connection.ok());
  REQUIRE(old_connection.round_trip("before") == std::optional<std::string>("before"));

  RuleOptions options;
  options.syn_only = syn_only;
  InpodRules rules(backend);
  REQUIRE(rules.install(cfd->get(), options));
  const bool survived = old_connection.round_trip("after") == std::optional<std::string>("after");
  // New connections are captured either way: nothing listens on 15001 here, so they are refused.
  CHECK_FALSE(NetnsClient(cfd->get(), "10.98.0.2", 8080, std::chrono::seconds(2)).ok());
  REQUIRE(rules.remove(cfd->get(), options));
  return survived;
}

}  // namespace

TEST_SUITE("cni/rules/syn_only") {
  TEST_CASE("generated rules: --syn on exactly the TCP REDIRECT rules; off reproduces Istio's text") {
    RuleOptions o;
    const std::string plain = iptables_restore_input(o, IptablesFamily::V4);
    CHECK(count(plain, "--syn") == 0);
    o.syn_only = true;
    const std::string syn = iptables_restore_input(o, IptablesFamily::V4);
    CHECK(count(syn, "-p tcp --syn") == 3);  // 15006, DNS over TCP, 15001
    CHECK(count(syn, "--syn") == count(syn, "-p tcp --syn"));
    o.virtual_interfaces = {"net1"};
    CHECK(count(iptables_restore_input(o, IptablesFamily::V4), "-p tcp --syn") == 4);
    o.dns_capture = false;
    o.virtual_interfaces.clear();
    CHECK(count(iptables_restore_input(o, IptablesFamily::V4), "-p tcp --syn") == 2);

    RuleOptions n;
    CHECK(count(nftables_script(n), "tcp flags") == 0);
    n.syn_only = true;
    const std::string nft = nftables_script(n);
    CHECK(count(nft, "tcp flags & (fin | syn | rst | ack) == syn") == 3);
    CHECK(count(nft, "redirect to") - 1 == count(nft, "tcp flags"));  // every redirect but DNS over UDP
  }

  TEST_CASE("a connection open before install keeps working with syn_only, and is reset without it" *
            doctest::skip(rules_test::needs_root("syn_only: established connections across install"))) {
    SUBCASE("iptables") {
      CHECK(established_connection_survives(Backend::Iptables, true));
      CHECK_FALSE(established_connection_survives(Backend::Iptables, false));
    }
    SUBCASE("nftables") {
      CHECK(established_connection_survives(Backend::Nftables, true));
      CHECK_FALSE(established_connection_survives(Backend::Nftables, false));
    }
  }
}
