// Golden bytes for proto/authorization.proto (istio.security): bytes as istiod sends them,
// assembled from Istio's field numbers written out here, must land where ztunnel's RBAC reads them.
#include <doctest/doctest.h>

#include <string>

#include "proto/authorization.pb.h"
#include "test/proto/wire.h"

using wire::len;
using wire::num;
using wire::varint;

namespace {

const std::string kNet10("\x0a\x00\x00\x00", 4);   // 10.0.0.0
const std::string kNet192("\xc0\xa8\x00\x00", 4);  // 192.168.0.0
const std::string kHost("\x0a\x00\x01\x05", 4);    // 10.0.1.5
const std::string kHost6("\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01", 16);

// Address{address, length}
std::string cidr(const std::string& ip, unsigned bits) { return len(1, ip) + num(2, bits); }
// ServiceAccountMatch{namespace, serviceAccount}
std::string sa(const char* ns, const char* name) { return len(1, ns) + len(2, name); }

// One Match with every field populated; StringMatch variants: exact = 1, prefix = 2, suffix = 3,
// presence = 4 (google.protobuf.Empty).
std::string match_bytes() {
  return len(1, len(1, "ns-a")) +                               // namespaces: exact
         len(2, len(2, "kube-")) +                              // not_namespaces: prefix
         len(3, len(3, "/sa/client")) +                         // principals: suffix
         len(4, len(4, "")) +                                   // not_principals: presence
         len(5, cidr(kNet10, 8)) +                              // source_ips
         len(6, cidr(kNet192, 16)) +                            // not_source_ips
         len(7, cidr(kHost, 32)) + len(7, cidr(kHost6, 128)) +  // destination_ips
         len(8, cidr(kNet192, 24)) +                            // not_destination_ips
         len(9, varint(80) + varint(443)) +                     // destination_ports (packed)
         len(10, varint(9999)) +                                // not_destination_ports (packed)
         len(11, sa("ns-a", "client")) +                        // service_accounts
         len(12, sa("ns-b", "blocked")) +                       // not_service_accounts
         len(13, len(1, "ext-m"));                              // extensions
}

}  // namespace

TEST_SUITE("proto/authorization") {
  TEST_CASE("Authorization -> Rule -> Clause -> Match: every field lands where istiod puts it") {
    const std::string clause = len(2, match_bytes()) + len(2, len(9, varint(8080)));  // matches
    const std::string rule = len(1, clause);                                          // clauses
    const std::string bytes = len(1, "allow-a") +                                     // name
                              len(2, "ns1") +                                         // namespace
                              num(3, 2) +                  // scope WORKLOAD_SELECTOR
                              num(4, 1) +                  // action DENY
                              len(5, rule) + len(5, "") +  // rules (second one empty)
                              num(6, 1) +                  // dry_run
                              len(7, len(1, "ext-a"));     // extensions (istio.workload.Extension)

    istio::security::Authorization p;
    REQUIRE(p.ParseFromString(bytes));
    CHECK(p.GetReflection()->GetUnknownFields(p).empty());
    CHECK(p.name() == "allow-a");
    CHECK(p.namespace_() == "ns1");
    CHECK(p.scope() == istio::security::WORKLOAD_SELECTOR);
    CHECK(p.action() == istio::security::DENY);
    CHECK(p.dry_run());
    REQUIRE(p.extensions_size() == 1);
    CHECK(p.extensions(0).name() == "ext-a");

    REQUIRE(p.rules_size() == 2);
    CHECK(p.rules(1).clauses_size() == 0);
    REQUIRE(p.rules(0).clauses_size() == 1);
    const auto& c = p.rules(0).clauses(0);
    REQUIRE(c.matches_size() == 2);
    REQUIRE(c.matches(1).destination_ports_size() == 1);
    CHECK(c.matches(1).destination_ports(0) == 8080);

    const auto& m = c.matches(0);
    CHECK(m.GetReflection()->GetUnknownFields(m).empty());
    REQUIRE(m.namespaces_size() == 1);
    CHECK(m.namespaces(0).match_type_case() == istio::security::StringMatch::kExact);
    CHECK(m.namespaces(0).exact() == "ns-a");
    REQUIRE(m.not_namespaces_size() == 1);
    CHECK(m.not_namespaces(0).match_type_case() == istio::security::StringMatch::kPrefix);
    CHECK(m.not_namespaces(0).prefix() == "kube-");
    REQUIRE(m.principals_size() == 1);
    CHECK(m.principals(0).match_type_case() == istio::security::StringMatch::kSuffix);
    CHECK(m.principals(0).suffix() == "/sa/client");
    REQUIRE(m.not_principals_size() == 1);
    CHECK(m.not_principals(0).match_type_case() == istio::security::StringMatch::kPresence);

    REQUIRE(m.source_ips_size() == 1);
    CHECK(m.source_ips(0).address() == kNet10);
    CHECK(m.source_ips(0).length() == 8);
    REQUIRE(m.not_source_ips_size() == 1);
    CHECK(m.not_source_ips(0).address() == kNet192);
    CHECK(m.not_source_ips(0).length() == 16);
    REQUIRE(m.destination_ips_size() == 2);
    CHECK(m.destination_ips(0).address() == kHost);
    CHECK(m.destination_ips(0).length() == 32);
    CHECK(m.destination_ips(1).address() == kHost6);
    CHECK(m.destination_ips(1).length() == 128);
    REQUIRE(m.not_destination_ips_size() == 1);
    CHECK(m.not_destination_ips(0).length() == 24);

    REQUIRE(m.destination_ports_size() == 2);
    CHECK(m.destination_ports(0) == 80);
    CHECK(m.destination_ports(1) == 443);
    REQUIRE(m.not_destination_ports_size() == 1);
    CHECK(m.not_destination_ports(0) == 9999);

    REQUIRE(m.service_accounts_size() == 1);
    CHECK(m.service_accounts(0).namespace_() == "ns-a");
    CHECK(m.service_accounts(0).service_account() == "client");
    REQUIRE(m.not_service_accounts_size() == 1);
    CHECK(m.not_service_accounts(0).namespace_() == "ns-b");
    CHECK(m.not_service_accounts(0).service_account() == "blocked");
    REQUIRE(m.extensions_size() == 1);
    CHECK(m.extensions(0).name() == "ext-m");
  }

  TEST_CASE("ports also decode unpacked") {
    istio::security::Match m;
    REQUIRE(m.ParseFromString(num(9, 80) + num(9, 443) + num(10, 22)));
    REQUIRE(m.destination_ports_size() == 2);
    CHECK(m.destination_ports(1) == 443);
    REQUIRE(m.not_destination_ports_size() == 1);
    CHECK(m.not_destination_ports(0) == 22);
  }

  TEST_CASE("type URL name and enum values are Istio's") {
    CHECK(istio::security::Authorization::descriptor()->full_name() ==
          "istio.security.Authorization");
    CHECK(istio::security::GLOBAL == 0);
    CHECK(istio::security::NAMESPACE == 1);
    CHECK(istio::security::WORKLOAD_SELECTOR == 2);
    CHECK(istio::security::ALLOW == 0);
    CHECK(istio::security::DENY == 1);
  }
}
