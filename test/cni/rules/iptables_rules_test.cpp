// Golden tests: the iptables-restore input must equal Istio's cni/pkg/iptables/testdata goldens (the
// iptables-save style ones: "-N" lines, COMMIT). Differences from Istio, on purpose:
//  - ingress mode keeps the mangle CONNMARK --set-xmark rule (the fix of istio/istio#58546; older goldens
//    predate it).
#include <doctest/doctest.h>

#include <string>

#include "cni/rules/iptables_rules.h"

using namespace ambient::cni;

namespace {

const char* const kDefaultV4 = R"(* mangle
-N ISTIO_PRERT
-N ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff
-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
COMMIT
* nat
-N ISTIO_PRERT
-N ISTIO_OUTPUT
-A OUTPUT -j ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A ISTIO_PRERT -s 169.254.7.127 -p tcp -m tcp -j ACCEPT
-A ISTIO_OUTPUT -d 169.254.7.127 -p tcp -m tcp -j ACCEPT
-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006
-A ISTIO_OUTPUT ! -o lo -p udp -m mark ! --mark 0x539/0xfff -m udp --dport 53 -j REDIRECT --to-port 15053
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp --dport 53 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
COMMIT
* raw
-N ISTIO_OUTPUT
-N ISTIO_PRERT
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -p udp -m mark --mark 0x539/0xfff -m udp --dport 53 -j CT --zone 1
-A ISTIO_PRERT -p udp -m mark ! --mark 0x539/0xfff -m udp --sport 53 -j CT --zone 1
COMMIT
)";

// default_ipv6.golden, second half (Istio's test uses this SNAT address).
const char* const kDefaultV6 = R"(* mangle
-N ISTIO_PRERT
-N ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff
-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
COMMIT
* nat
-N ISTIO_PRERT
-N ISTIO_OUTPUT
-A OUTPUT -j ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A ISTIO_PRERT -s e9ac:1e77:90ca:399f:4d6d:ece2:2f9b:3164 -p tcp -m tcp -j ACCEPT
-A ISTIO_OUTPUT -d e9ac:1e77:90ca:399f:4d6d:ece2:2f9b:3164 -p tcp -m tcp -j ACCEPT
-A ISTIO_PRERT ! -d ::1/128 -p tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006
-A ISTIO_OUTPUT ! -o lo -p udp -m mark ! --mark 0x539/0xfff -m udp --dport 53 -j REDIRECT --to-port 15053
-A ISTIO_OUTPUT ! -d ::1/128 -p tcp --dport 53 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
-A ISTIO_OUTPUT ! -d ::1/128 -o lo -j ACCEPT
-A ISTIO_OUTPUT ! -d ::1/128 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
COMMIT
* raw
-N ISTIO_OUTPUT
-N ISTIO_PRERT
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -p udp -m mark --mark 0x539/0xfff -m udp --dport 53 -j CT --zone 1
-A ISTIO_PRERT -p udp -m mark ! --mark 0x539/0xfff -m udp --sport 53 -j CT --zone 1
COMMIT
)";

// dns_pod_disabled_and_on_globally.golden
const char* const kDnsOff = R"(* mangle
-N ISTIO_PRERT
-N ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff
-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
COMMIT
* nat
-N ISTIO_PRERT
-N ISTIO_OUTPUT
-A OUTPUT -j ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A ISTIO_PRERT -s 169.254.7.127 -p tcp -m tcp -j ACCEPT
-A ISTIO_OUTPUT -d 169.254.7.127 -p tcp -m tcp -j ACCEPT
-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006
-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
COMMIT
)";

// ingress.golden (DNS off in Istio's case) plus the kept mangle CONNMARK rule.
const char* const kIngress = R"(* mangle
-N ISTIO_PRERT
-N ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff
-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
COMMIT
* nat
-N ISTIO_OUTPUT
-N ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A ISTIO_OUTPUT -d 169.254.7.127 -p tcp -m tcp -j ACCEPT
-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
COMMIT
)";

// virtual_interfaces.golden (DNS off in Istio's case).
const char* const kVirtualInterfaces = R"(* mangle
-N ISTIO_PRERT
-N ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff
-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
COMMIT
* nat
-N ISTIO_PRERT
-N ISTIO_OUTPUT
-A OUTPUT -j ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A ISTIO_PRERT -i fake1s0f0 -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_PRERT -i fake1s0f0 -p tcp -j RETURN
-A ISTIO_PRERT -i fake1s0f1 -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_PRERT -i fake1s0f1 -p tcp -j RETURN
-A ISTIO_PRERT -s 169.254.7.127 -p tcp -m tcp -j ACCEPT
-A ISTIO_OUTPUT -d 169.254.7.127 -p tcp -m tcp -j ACCEPT
-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006
-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
COMMIT
)";

// ingress_and_virtual_interfaces.golden plus the kept mangle CONNMARK rule.
const char* const kIngressAndVirtualInterfaces = R"(* mangle
-N ISTIO_PRERT
-N ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff
-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
COMMIT
* nat
-N ISTIO_PRERT
-N ISTIO_OUTPUT
-A OUTPUT -j ISTIO_OUTPUT
-A PREROUTING -j ISTIO_PRERT
-A ISTIO_PRERT -i fake1s0f0 -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_PRERT -i fake1s0f0 -p tcp -j RETURN
-A ISTIO_PRERT -i fake1s0f1 -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_PRERT -i fake1s0f1 -p tcp -j RETURN
-A ISTIO_OUTPUT -d 169.254.7.127 -p tcp -m tcp -j ACCEPT
-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
COMMIT
)";

struct GoldenCase {
  const char* name;
  RuleOptions options;
  IptablesFamily family;
  const char* golden;
};

RuleOptions with(auto&& edit) {
  RuleOptions o;
  edit(o);
  return o;
}

}  // namespace

TEST_SUITE("cni/rules/iptables_rules") {
  TEST_CASE("restore input equals the Istio goldens") {
    const std::vector<GoldenCase> cases{
        {"default (DNS on)", RuleOptions{}, IptablesFamily::V4, kDefaultV4},
        {"default ipv6: the v4 half is unchanged", with([](RuleOptions& o) {
           o.ipv6 = true;
           o.probe_snat_ipv6 = "e9ac:1e77:90ca:399f:4d6d:ece2:2f9b:3164";
         }),
         IptablesFamily::V4, kDefaultV4},
        {"default ipv6: the v6 half", with([](RuleOptions& o) {
           o.ipv6 = true;
           o.probe_snat_ipv6 = "e9ac:1e77:90ca:399f:4d6d:ece2:2f9b:3164";
         }),
         IptablesFamily::V6, kDefaultV6},
        {"DNS off: no raw table, no port 53", with([](RuleOptions& o) { o.dns_capture = false; }), IptablesFamily::V4,
         kDnsOff},
        {"ingress mode", with([](RuleOptions& o) {
           o.dns_capture = false;
           o.ingress_mode = true;
         }),
         IptablesFamily::V4, kIngress},
        {"virtual interfaces", with([](RuleOptions& o) {
           o.dns_capture = false;
           o.virtual_interfaces = {"fake1s0f0", "fake1s0f1"};
         }),
         IptablesFamily::V4, kVirtualInterfaces},
        {"ingress and virtual interfaces", with([](RuleOptions& o) {
           o.dns_capture = false;
           o.ingress_mode = true;
           o.virtual_interfaces = {"fake1s0f0", "fake1s0f1"};
         }),
         IptablesFamily::V4, kIngressAndVirtualInterfaces},
    };
    for (const auto& c : cases) {
      CAPTURE(c.name);
      REQUIRE(validate(c.options));
      CHECK(iptables_restore_input(c.options, c.family) == std::string(c.golden));
    }
  }

  TEST_CASE("non-default values land in every rule; the default v6 SNAT address is Istio's") {
    RuleOptions o;
    o.packet_mark = 0x7;
    o.mark_mask = 0xff;
    o.tproxy_mark = 0x22;
    o.outbound_port = 1001;
    o.inbound_plaintext_port = 1006;
    o.inbound_hbone_port = 1008;
    o.dns_port = 1053;
    o.probe_snat_ipv4 = "10.0.0.9";
    REQUIRE(validate(o));
    const auto text = iptables_restore_input(o, IptablesFamily::V4);
    for (const char* piece : {"--mark 0x7/0xff -j CONNMARK --set-xmark 0x22/0xff", "--to-ports 1001", "--to-ports 1006",
                              "! --dport 1008", "--to-port 1053", "-s 10.0.0.9 ", "-d 10.0.0.9 "}) {
      CAPTURE(piece);
      CHECK(text.find(piece) != std::string::npos);
    }
    CHECK(text.find("0x539") == std::string::npos);
    CHECK(text.find("1500") == std::string::npos);  // no default port left (15001, 15006, 15008, 15053)

    const auto v6 = iptables_restore_input(RuleOptions{}, IptablesFamily::V6);
    CHECK(v6.find("-s fd16:9254:7127:1337:ffff:ffff:ffff:ffff -p tcp") != std::string::npos);
    CHECK(iptables_restore_binary(IptablesFamily::V6) == "ip6tables-restore");
    CHECK(iptables_save_binary(IptablesFamily::V4) == "iptables-save");
  }
}
