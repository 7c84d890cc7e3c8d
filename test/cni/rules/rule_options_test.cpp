#include <doctest/doctest.h>

#include <functional>
#include <string>

#include "cni/rules/rule_options.h"

using namespace ambient;
using namespace ambient::cni;

TEST_SUITE("cni/rules/rule_options") {
  TEST_CASE("defaults are Istio's and valid") {
    RuleOptions o;
    CHECK(validate(o));
    CHECK(o.packet_mark == 0x539);
    CHECK(o.mark_mask == 0xfff);
    CHECK(o.tproxy_mark == 0x111);
    CHECK(o.route_table == 100);
    CHECK(o.rule_priority == 32764);
    CHECK(canonical_probe_snat_ipv4(o) == "169.254.7.127");
    CHECK(canonical_probe_snat_ipv6(o) == "fd16:9254:7127:1337:ffff:ffff:ffff:ffff");
  }

  TEST_CASE("refused values are InvalidArgument naming the field") {
    struct Case {
      const char* field;  // must appear in the message
      std::function<void(RuleOptions&)> edit;
    };
    const std::vector<Case> cases{
        {"mark_mask", [](RuleOptions& o) { o.mark_mask = 0; }},
        {"packet_mark", [](RuleOptions& o) { o.packet_mark = 0; }},
        {"packet_mark", [](RuleOptions& o) { o.packet_mark = 0x1539; }},  // outside the mask
        {"tproxy_mark", [](RuleOptions& o) { o.tproxy_mark = 0x539; }},   // equals packet_mark
        {"outbound_port", [](RuleOptions& o) { o.outbound_port = 0; }},
        {"inbound_plaintext_port", [](RuleOptions& o) { o.inbound_plaintext_port = 0; }},
        {"inbound_hbone_port", [](RuleOptions& o) { o.inbound_hbone_port = 0; }},
        {"dns_port", [](RuleOptions& o) { o.dns_port = 0; }},
        {"dns_port", [](RuleOptions& o) { o.dns_port = 15001; }},  // duplicate
        {"probe_snat_ipv4", [](RuleOptions& o) { o.probe_snat_ipv4 = "169.254.7"; }},
        {"probe_snat_ipv4", [](RuleOptions& o) { o.probe_snat_ipv4 = "::1"; }},
        {"probe_snat_ipv6", [](RuleOptions& o) { o.probe_snat_ipv6 = "fd16::zz"; }},
        {"virtual_interfaces[0]", [](RuleOptions& o) { o.virtual_interfaces = {""}; }},
        {"virtual_interfaces[1]", [](RuleOptions& o) { o.virtual_interfaces = {"eth0", "eth 1"}; }},
        {"virtual_interfaces[0]", [](RuleOptions& o) { o.virtual_interfaces = {"a-name-that-is-too-long"}; }},
        {"virtual_interfaces[0]", [](RuleOptions& o) { o.virtual_interfaces = {"eth0\n-A OUTPUT -j DROP"}; }},
        {"virtual_interfaces[0]", [](RuleOptions& o) { o.virtual_interfaces = {".."}; }},
        {"virtual_interfaces[0]", [](RuleOptions& o) { o.virtual_interfaces = {"eth0;"}; }},
        {"virtual_interfaces[1]", [](RuleOptions& o) { o.virtual_interfaces = {"eth0", "eth0"}; }},
        {"virtual_interfaces", [](RuleOptions& o) { o.virtual_interfaces.assign(65, "x"); }},
        {"route_table", [](RuleOptions& o) { o.route_table = 0; }},
        {"route_table", [](RuleOptions& o) { o.route_table = 254; }},
        {"rule_priority", [](RuleOptions& o) { o.rule_priority = 0; }},
        {"rule_priority", [](RuleOptions& o) { o.rule_priority = 32766; }},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
      RuleOptions o;
      cases[i].edit(o);
      auto r = validate(o);
      CAPTURE(i);
      CAPTURE(cases[i].field);
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::InvalidArgument);
      CHECK(r.error().context.find(cases[i].field) != std::string::npos);
      CHECK(r.error().context.starts_with("rule options: "));
    }
  }

  TEST_CASE("accepted edge values") {
    RuleOptions o;
    o.virtual_interfaces = {"eth0", "net1.100", "a_b-c", "123456789012345"};
    o.probe_snat_ipv6 = "FD16:9254:7127:1337:FFFF:FFFF:FFFF:FFFF";  // printed canonically
    o.rule_priority = 32765;
    o.route_table = 256;
    CHECK(validate(o));
    CHECK(canonical_probe_snat_ipv6(o) == "fd16:9254:7127:1337:ffff:ffff:ffff:ffff");
  }
}
