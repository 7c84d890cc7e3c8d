#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/rbac/authorization.h"

using namespace ambient::rbac;
using namespace std::string_literals;
namespace sec = istio::security;

namespace {

// ---- protobuf builders ----

sec::StringMatch exact(std::string_view v) { sec::StringMatch m; m.set_exact(std::string(v)); return m; }
sec::StringMatch prefix(std::string_view v) { sec::StringMatch m; m.set_prefix(std::string(v)); return m; }
sec::StringMatch suffix(std::string_view v) { sec::StringMatch m; m.set_suffix(std::string(v)); return m; }
sec::StringMatch presence() { sec::StringMatch m; m.mutable_presence(); return m; }
sec::StringMatch unset() { return {}; }  // no oneof member: ztunnel drops it

// "10.0.0.0/24" or a host "10.0.0.1" (length = full width, as istiod sends it).
sec::Address cidr(std::string_view text) {
  const auto slash = text.find('/');
  const IpAddress ip = IpAddress::parse(text.substr(0, slash)).value();
  sec::Address a;
  a.set_address(std::string(ip.bytes().begin(), ip.bytes().end()));
  a.set_length(slash == std::string_view::npos ? static_cast<std::uint32_t>(ip.bytes().size() * 8)
                                               : static_cast<std::uint32_t>(std::stoul(std::string(text.substr(slash + 1)))));
  return a;
}

sec::Address raw_address(std::string bytes, std::uint32_t length) {
  sec::Address a;
  a.set_address(std::move(bytes));
  a.set_length(length);
  return a;
}

using NsSa = std::pair<std::string_view, std::string_view>;

// Fluent Match builder: each call appends to one field.
class M {
 public:
  M& namespaces(std::initializer_list<sec::StringMatch> l) { for (const auto& s : l) *m_.add_namespaces() = s; return *this; }
  M& not_namespaces(std::initializer_list<sec::StringMatch> l) { for (const auto& s : l) *m_.add_not_namespaces() = s; return *this; }
  M& principals(std::initializer_list<sec::StringMatch> l) { for (const auto& s : l) *m_.add_principals() = s; return *this; }
  M& not_principals(std::initializer_list<sec::StringMatch> l) { for (const auto& s : l) *m_.add_not_principals() = s; return *this; }
  M& source_ips(std::initializer_list<sec::Address> l) { for (const auto& a : l) *m_.add_source_ips() = a; return *this; }
  M& not_source_ips(std::initializer_list<sec::Address> l) { for (const auto& a : l) *m_.add_not_source_ips() = a; return *this; }
  M& destination_ips(std::initializer_list<sec::Address> l) { for (const auto& a : l) *m_.add_destination_ips() = a; return *this; }
  M& not_destination_ips(std::initializer_list<sec::Address> l) { for (const auto& a : l) *m_.add_not_destination_ips() = a; return *this; }
  M& destination_ports(std::initializer_list<std::uint32_t> l) { for (auto p : l) m_.add_destination_ports(p); return *this; }
  M& not_destination_ports(std::initializer_list<std::uint32_t> l) { for (auto p : l) m_.add_not_destination_ports(p); return *this; }
  M& service_accounts(std::initializer_list<NsSa> l) { for (const auto& s : l) add(m_.add_service_accounts(), s); return *this; }
  M& not_service_accounts(std::initializer_list<NsSa> l) { for (const auto& s : l) add(m_.add_not_service_accounts(), s); return *this; }
  M& extension(std::string_view name) { m_.add_extensions()->set_name(std::string(name)); return *this; }
  operator sec::Match() const { return m_; }  // NOLINT(implicit): lets builders sit in clause(...)

 private:
  static void add(sec::ServiceAccountMatch* out, const NsSa& s) {
    out->set_namespace_(std::string(s.first));
    out->set_service_account(std::string(s.second));
  }
  sec::Match m_;
};

template <typename... Ms>
sec::Clause clause(const Ms&... ms) {
  sec::Clause c;
  (c.mutable_matches()->Add(sec::Match(ms)), ...);
  return c;
}

template <typename... Cs>
sec::Rule rule(const Cs&... cs) {
  sec::Rule r;
  (r.mutable_clauses()->Add(sec::Clause(cs)), ...);
  return r;
}

// key = "namespace/name"; action ALLOW or DENY; rules OR-ed.
template <typename... Rs>
sec::Authorization policy(std::string_view key, sec::Action action, const Rs&... rs) {
  sec::Authorization p;
  const auto slash = key.find('/');
  p.set_namespace_(std::string(key.substr(0, slash)));
  p.set_name(std::string(key.substr(slash + 1)));
  p.set_scope(p.namespace_().empty() ? sec::GLOBAL : sec::NAMESPACE);
  p.set_action(action);
  (p.mutable_rules()->Add(sec::Rule(rs)), ...);
  return p;
}

template <typename... Rs>
sec::Authorization allow(std::string_view key, const Rs&... rs) { return policy(key, sec::ALLOW, rs...); }
template <typename... Rs>
sec::Authorization deny(std::string_view key, const Rs&... rs) { return policy(key, sec::DENY, rs...); }

sec::Authorization dry_run(sec::Authorization p) {
  p.set_dry_run(true);
  return p;
}

// A policy of one rule with one clause holding `m`.
sec::Authorization allow_when(const sec::Match& m) { return allow("ns/test", rule(clause(m))); }

// ---- connections ----

constexpr std::string_view kClient = "spiffe://cluster.local/ns/default/sa/client";
constexpr std::string_view kOther = "spiffe://other.td/ns/other/sa/alt";

Connection conn(std::optional<std::string_view> spiffe, std::string_view src, std::string_view dst,
                std::uint16_t port) {
  Connection c;
  if (spiffe) c.source = Identity::parse(*spiffe).value();
  c.source_ip = IpAddress::parse(src).value();
  c.destination_ip = IpAddress::parse(dst).value();
  c.destination_port = port;
  return c;
}

Connection plaintext() { return conn(std::nullopt, "10.0.0.1", "10.0.0.2", 8080); }
Connection tls() { return conn(kClient, "10.0.0.1", "10.0.0.2", 8080); }
Connection other() { return conn(kOther, "10.1.0.3", "10.1.0.4", 9090); }
Connection v6() { return conn(kClient, "2001:db8::1", "2001:db8::2", 8080); }
Connection mapped() { return conn(kClient, "::ffff:10.0.0.1", "::ffff:10.0.0.2", 8080); }
Connection tls_as(std::string_view spiffe) { return conn(spiffe, "10.0.0.1", "10.0.0.2", 8080); }
Connection tls_port(std::uint16_t port) { return conn(kClient, "10.0.0.1", "10.0.0.2", port); }

struct MatchRow {
  const char* name;
  sec::Match match;
  Connection conn;
  bool want;
};

void check_rows(const std::vector<MatchRow>& rows) {
  for (const MatchRow& row : rows) {
    CAPTURE(row.name);
    const sec::Authorization p = allow_when(row.match);
    CHECK(matches(p, row.conn) == row.want);
    // The same policy as the only enforcing ALLOW: the decision follows the match.
    const sec::Authorization* ptrs[] = {&p};
    CHECK(evaluate(ptrs, row.conn).allowed == row.want);
  }
}

}  // namespace

TEST_SUITE("common/rbac/authorization") {
  TEST_CASE("identity fields: namespaces, principals, service accounts and their negations") {
    check_rows({
        {"namespaces exact: same namespace", M().namespaces({exact("default")}), tls(), true},
        {"namespaces exact: other namespace", M().namespaces({exact("default")}), other(), false},
        {"namespaces exact: plaintext", M().namespaces({exact("default")}), plaintext(), false},
        {"namespaces prefix", M().namespaces({prefix("def")}), tls(), true},
        {"namespaces prefix: miss", M().namespaces({prefix("def")}), other(), false},
        {"namespaces suffix", M().namespaces({suffix("ault")}), tls(), true},
        {"namespaces suffix: miss", M().namespaces({suffix("ault")}), other(), false},
        {"namespaces presence", M().namespaces({presence()}), tls(), true},
        {"namespaces presence: plaintext", M().namespaces({presence()}), plaintext(), false},
        {"namespaces exact \"\": plaintext has namespace \"\" (ztunnel)", M().namespaces({exact("")}), plaintext(), true},
        {"namespaces exact \"\": identity", M().namespaces({exact("")}), tls(), false},
        {"namespaces list: any entry", M().namespaces({exact("x"), exact("other")}), other(), true},
        {"namespaces list: none", M().namespaces({exact("x"), exact("y")}), tls(), false},
        {"not_namespaces: same namespace", M().not_namespaces({exact("default")}), tls(), false},
        {"not_namespaces: other namespace", M().not_namespaces({exact("default")}), other(), true},
        {"not_namespaces: plaintext", M().not_namespaces({exact("default")}), plaintext(), true},
        {"not_namespaces presence: plaintext", M().not_namespaces({presence()}), plaintext(), true},
        {"not_namespaces presence: identity", M().not_namespaces({presence()}), tls(), false},
        {"not_namespaces list: one entry hits", M().not_namespaces({exact("x"), prefix("de")}), tls(), false},

        {"principals exact", M().principals({exact("cluster.local/ns/default/sa/client")}), tls(), true},
        {"principals exact: other", M().principals({exact("cluster.local/ns/default/sa/client")}), other(), false},
        {"principals exact: plaintext", M().principals({exact("cluster.local/ns/default/sa/client")}), plaintext(), false},
        {"principals exact with scheme never matches", M().principals({exact(kClient)}), tls(), false},
        {"principals prefix", M().principals({prefix("cluster.local/")}), tls(), true},
        {"principals prefix: other trust domain", M().principals({prefix("cluster.local/")}), other(), false},
        {"principals suffix", M().principals({suffix("/sa/client")}), tls(), true},
        {"principals suffix: miss", M().principals({suffix("/sa/client")}), other(), false},
        {"principals presence", M().principals({presence()}), tls(), true},
        {"principals presence: plaintext", M().principals({presence()}), plaintext(), false},
        {"principals prefix \"\": plaintext still fails", M().principals({prefix("")}), plaintext(), false},
        {"principals prefix \"\": identity", M().principals({prefix("")}), tls(), true},
        {"not_principals exact: same", M().not_principals({exact("cluster.local/ns/default/sa/client")}), tls(), false},
        {"not_principals exact: other", M().not_principals({exact("cluster.local/ns/default/sa/client")}), other(), true},
        {"not_principals exact: plaintext", M().not_principals({exact("cluster.local/ns/default/sa/client")}), plaintext(), true},
        {"not_principals presence: plaintext (STRICT)", M().not_principals({presence()}), plaintext(), true},
        {"not_principals presence: identity", M().not_principals({presence()}), tls(), false},

        {"service_accounts: same", M().service_accounts({{"default", "client"}}), tls(), true},
        {"service_accounts: other", M().service_accounts({{"default", "client"}}), other(), false},
        {"service_accounts: plaintext", M().service_accounts({{"default", "client"}}), plaintext(), false},
        {"service_accounts: same ns, other sa", M().service_accounts({{"default", "other"}}), tls(), false},
        {"service_accounts: other ns, same sa", M().service_accounts({{"kube-system", "client"}}), tls(), false},
        {"service_accounts: trust domain ignored", M().service_accounts({{"default", "client"}}),
         tls_as("spiffe://foreign.td/ns/default/sa/client"), true},
        {"service_accounts list", M().service_accounts({{"a", "b"}, {"other", "alt"}}), other(), true},
        {"service_accounts: empty pair vs plaintext", M().service_accounts({{"", ""}}), plaintext(), false},
        {"not_service_accounts: same", M().not_service_accounts({{"default", "client"}}), tls(), false},
        {"not_service_accounts: other", M().not_service_accounts({{"default", "client"}}), other(), true},
        {"not_service_accounts: plaintext", M().not_service_accounts({{"default", "client"}}), plaintext(), true},
    });
  }

  TEST_CASE("IP fields: CIDR containment, v4 / v6 / v4-mapped") {
    check_rows({
        {"source /32 hit", M().source_ips({cidr("10.0.0.1/32")}), tls(), true},
        {"source /32 miss", M().source_ips({cidr("10.0.0.1/32")}), other(), false},
        {"source host (length 32)", M().source_ips({cidr("10.0.0.1")}), tls(), true},
        {"source /24 hit", M().source_ips({cidr("10.0.0.0/24")}), tls(), true},
        {"source /24 miss", M().source_ips({cidr("10.0.0.0/24")}), other(), false},
        {"source /24 with host bits set", M().source_ips({cidr("10.0.0.99/24")}), tls(), true},
        {"source /15 (not byte aligned) hit", M().source_ips({cidr("10.0.0.0/15")}), other(), true},
        {"source /16 miss", M().source_ips({cidr("10.0.0.0/16")}), other(), false},
        {"source /0 v4 matches any v4", M().source_ips({cidr("0.0.0.0/0")}), other(), true},
        {"source /0 v4 does not match v6", M().source_ips({cidr("0.0.0.0/0")}), v6(), false},
        {"source length 0 on a host address is /0", M().source_ips({raw_address("\x01\x02\x03\x04"s, 0)}), tls(), true},
        {"source v6 /32 hit", M().source_ips({cidr("2001:db8::/32")}), v6(), true},
        {"source v6 /32 vs v4", M().source_ips({cidr("2001:db8::/32")}), tls(), false},
        {"source v6 /128 hit", M().source_ips({cidr("2001:db8::1/128")}), v6(), true},
        {"source v6 /128 miss", M().source_ips({cidr("2001:db8::2/128")}), v6(), false},
        {"source v6 /127 hit", M().source_ips({cidr("2001:db8::/127")}), v6(), true},
        {"source ::/0 matches v6", M().source_ips({cidr("::/0")}), v6(), true},
        {"source ::/0 does not match v4", M().source_ips({cidr("::/0")}), tls(), false},
        {"source v4-mapped peer matches v4 /32", M().source_ips({cidr("10.0.0.1/32")}), mapped(), true},
        {"source v4-mapped peer matches v4 /24", M().source_ips({cidr("10.0.0.0/24")}), mapped(), true},
        {"source v4-mapped peer vs v4 miss", M().source_ips({cidr("10.1.0.0/16")}), mapped(), false},
        {"source v4-mapped CIDR vs v4 peer", M().source_ips({cidr("::ffff:10.0.0.1/128")}), tls(), false},
        {"source v4-mapped CIDR vs mapped peer (canonicalized to v4)", M().source_ips({cidr("::ffff:0:0/96")}), mapped(), false},
        {"source list: any entry", M().source_ips({cidr("192.168.0.0/16"), cidr("10.1.0.0/16")}), other(), true},
        {"not_source /32 hit", M().not_source_ips({cidr("10.0.0.1/32")}), tls(), false},
        {"not_source /32 miss", M().not_source_ips({cidr("10.0.0.1/32")}), other(), true},
        {"not_source /0 v4 vs v6", M().not_source_ips({cidr("0.0.0.0/0")}), v6(), true},
        {"not_source /0 v4 vs v4", M().not_source_ips({cidr("0.0.0.0/0")}), tls(), false},
        {"not_source v4 /8 vs mapped peer", M().not_source_ips({cidr("10.0.0.0/8")}), mapped(), false},

        {"destination /32 hit", M().destination_ips({cidr("10.0.0.2/32")}), tls(), true},
        {"destination /32 miss", M().destination_ips({cidr("10.0.0.2/32")}), other(), false},
        {"destination /24 hit", M().destination_ips({cidr("10.0.0.0/24")}), tls(), true},
        {"destination compares destination, not source", M().destination_ips({cidr("10.0.0.1/32")}), tls(), false},
        {"source compares source, not destination", M().source_ips({cidr("10.0.0.2/32")}), tls(), false},
        {"destination v6 /128", M().destination_ips({cidr("2001:db8::2/128")}), v6(), true},
        {"destination v4-mapped pod IP vs v4 /32", M().destination_ips({cidr("10.0.0.2/32")}), mapped(), true},
        {"destination /0", M().destination_ips({cidr("0.0.0.0/0")}), tls(), true},
        {"not_destination /32 hit", M().not_destination_ips({cidr("10.0.0.2/32")}), tls(), false},
        {"not_destination /32 miss", M().not_destination_ips({cidr("10.0.0.2/32")}), other(), true},
        {"not_destination v6 vs v4", M().not_destination_ips({cidr("::/0")}), tls(), true},
    });
  }

  TEST_CASE("port fields") {
    check_rows({
        {"destination_ports hit", M().destination_ports({8080}), tls(), true},
        {"destination_ports miss", M().destination_ports({8080}), other(), false},
        {"destination_ports list", M().destination_ports({80, 9090}), other(), true},
        {"destination_ports list miss", M().destination_ports({80, 9090}), tls(), false},
        {"destination_ports taken modulo 65536 (ztunnel `as u16`)", M().destination_ports({65536 + 8080}), tls(), true},
        {"not_destination_ports hit", M().not_destination_ports({8080}), tls(), false},
        {"not_destination_ports miss", M().not_destination_ports({8080}), other(), true},
        {"not_destination_ports list", M().not_destination_ports({9999, 9090}), other(), false},
        {"not_destination_ports unrelated", M().not_destination_ports({9999}), tls(), true},
    });
  }

  TEST_CASE("entries ztunnel drops at conversion are absent") {
    check_rows({
        {"only an unset StringMatch: empty match, skipped", M().namespaces({unset()}), tls(), false},
        {"only an unset StringMatch: plaintext", M().not_principals({unset()}), plaintext(), false},
        {"unset StringMatch does not constrain", M().namespaces({unset()}).destination_ports({8080}), tls(), true},
        {"unset StringMatch beside a valid one", M().namespaces({unset(), exact("other")}), other(), true},
        {"unset StringMatch beside a valid one: miss", M().namespaces({unset(), exact("other")}), tls(), false},
        {"only a 3-byte address: empty match", M().source_ips({raw_address("\x0a\x00\x00"s, 24)}), tls(), false},
        {"only a v4 address with length 33: empty match", M().source_ips({raw_address("\x0a\x00\x00\x01"s, 33)}), tls(), false},
        {"only a v6 address with length 129: empty match",
         M().destination_ips({raw_address(std::string(16, '\0'), 129)}), v6(), false},
        {"invalid address does not constrain",
         M().source_ips({raw_address("\x0a\x00\x00\x01"s, 33)}).destination_ports({8080}), tls(), true},
        {"invalid address does not constrain: port miss",
         M().source_ips({raw_address("\x0a\x00\x00\x01"s, 33)}).destination_ports({8080}), other(), false},
        {"invalid negative address never excludes",
         M().not_source_ips({raw_address("\x0a\x00\x00"s, 0)}).destination_ports({8080}), tls(), true},
        {"invalid-length negative address never excludes",
         M().not_source_ips({raw_address("\x0a\x00\x00\x01"s, 33)}).destination_ports({8080}), tls(), true},
        {"length taken modulo 256 (ztunnel `as u8`): 288 = /32 hit",
         M().source_ips({raw_address("\x0a\x00\x00\x01"s, 256 + 32)}), tls(), true},
        {"length taken modulo 256: 288 = /32 miss", M().source_ips({raw_address("\x0a\x00\x00\x01"s, 256 + 32)}), other(), false},
        {"extensions only: empty match", M().extension("x"), tls(), false},
        {"extensions ignored beside a real field", M().extension("x").destination_ports({8080}), tls(), true},
    });
  }

  TEST_CASE("within one match every populated field kind must hold (AND)") {
    check_rows({
        {"namespace and port: both hold", M().namespaces({exact("default")}).destination_ports({8080}), tls(), true},
        {"namespace and port: port fails", M().namespaces({exact("default")}).destination_ports({8080}), tls_port(9090), false},
        {"namespace and port: namespace fails", M().namespaces({exact("default")}).destination_ports({9090}), other(), false},
        {"positive and negative of one kind: hit", M().namespaces({prefix("d")}).not_namespaces({exact("default")}),
         tls_as("spiffe://td/ns/dev/sa/a"), true},
        {"positive and negative of one kind: excluded", M().namespaces({prefix("d")}).not_namespaces({exact("default")}),
         tls(), false},
        {"ports: allowed list minus excluded", M().destination_ports({8080, 9090}).not_destination_ports({9090}), other(), false},
        {"principal present but source excluded", M().principals({presence()}).not_source_ips({cidr("10.0.0.0/8")}), tls(), false},
        {"principal present, source elsewhere", M().principals({presence()}).not_source_ips({cidr("192.168.0.0/16")}), tls(), true},
        {"all kinds hold",
         M().namespaces({exact("default")}).principals({suffix("/sa/client")}).service_accounts({{"default", "client"}})
             .source_ips({cidr("10.0.0.0/24")}).destination_ips({cidr("10.0.0.2")}).destination_ports({8080})
             .not_namespaces({exact("x")}).not_principals({exact("y")}).not_service_accounts({{"x", "y"}})
             .not_source_ips({cidr("10.0.0.9")}).not_destination_ips({cidr("10.0.0.9")}).not_destination_ports({1}),
         tls(), true},
        {"all kinds hold but one negative",
         M().namespaces({exact("default")}).principals({suffix("/sa/client")}).service_accounts({{"default", "client"}})
             .source_ips({cidr("10.0.0.0/24")}).destination_ips({cidr("10.0.0.2")}).destination_ports({8080})
             .not_destination_ports({8080}),
         tls(), false},
        {"identity kinds with plaintext: negative-only holds",
         M().not_principals({exact("a")}).not_namespaces({exact("default")}).not_service_accounts({{"default", "client"}}),
         plaintext(), true},
    });
  }

  TEST_CASE("structure: rules OR, clauses AND, matches OR, and the empty edge cases") {
    const sec::Match ns_a = M().namespaces({exact("a")});
    const sec::Match ns_b = M().namespaces({exact("b")});
    const sec::Match port_80 = M().destination_ports({80});
    const sec::Match empty = M();
    const auto in = [](std::string_view ns, std::uint16_t port) {
      return conn("spiffe://td/ns/" + std::string(ns) + "/sa/sa", "10.0.0.1", "10.0.0.2", port);
    };

    struct Row { const char* name; sec::Authorization policy; Connection conn; bool want; };
    const std::vector<Row> rows = {
        {"zero rules match nothing", allow("ns/p"), tls(), false},
        {"zero rules match nothing: plaintext", allow("ns/p"), plaintext(), false},
        {"rule with zero clauses matches everything", allow("ns/p", rule()), plaintext(), true},
        {"clause with zero matches matches", allow("ns/p", rule(clause())), plaintext(), true},
        {"clause of only empty matches does not match", allow("ns/p", rule(clause(empty))), tls(), false},
        {"clause of two empty matches does not match", allow("ns/p", rule(clause(empty, empty))), tls(), false},
        {"empty match skipped, the other decides: hit", allow("ns/p", rule(clause(empty, ns_a))), in("a", 1), true},
        {"empty match skipped, the other decides: miss", allow("ns/p", rule(clause(empty, ns_a))), in("c", 1), false},
        {"empty clause AND clause of empty match", allow("ns/p", rule(clause(), clause(empty))), tls(), false},
        {"matches in a clause OR: first", allow("ns/p", rule(clause(ns_a, ns_b))), in("a", 1), true},
        {"matches in a clause OR: second", allow("ns/p", rule(clause(ns_a, ns_b))), in("b", 1), true},
        {"matches in a clause OR: neither", allow("ns/p", rule(clause(ns_a, ns_b))), in("c", 1), false},
        {"clauses AND: both", allow("ns/p", rule(clause(ns_a, ns_b), clause(port_80))), in("b", 80), true},
        {"clauses AND: namespace fails", allow("ns/p", rule(clause(ns_a, ns_b), clause(port_80))), in("bad", 80), false},
        {"clauses AND: port fails", allow("ns/p", rule(clause(ns_a, ns_b), clause(port_80))), in("a", 12345), false},
        {"clauses AND: empty clause is neutral", allow("ns/p", rule(clause(), clause(port_80))), in("x", 80), true},
        {"rules OR: first", allow("ns/p", rule(clause(ns_a)), rule(clause(ns_b))), in("a", 1), true},
        {"rules OR: second", allow("ns/p", rule(clause(ns_a)), rule(clause(ns_b))), in("b", 1), true},
        {"rules OR: neither", allow("ns/p", rule(clause(ns_a)), rule(clause(ns_b))), in("c", 1), false},
        {"rules OR: a zero-clause rule matches all", allow("ns/p", rule(clause(ns_a)), rule()), in("c", 1), true},
        {"rules OR: a rule of an empty match adds nothing", allow("ns/p", rule(clause(ns_a)), rule(clause(empty))), in("c", 1), false},
    };
    for (const Row& row : rows) {
      CAPTURE(row.name);
      CHECK(matches(row.policy, row.conn) == row.want);
    }
  }

  TEST_CASE("decision order: dry-run DENY, DENY, dry-run ALLOW, no ALLOW, ALLOW, NotAllowed") {
    using R = Decision::Reason;
    const sec::Authorization allow_default = allow("ns1/allow-default", rule(clause(M().namespaces({exact("default")}))));
    const sec::Authorization allow_other = allow("ns1/allow-other", rule(clause(M().namespaces({exact("other")}))));
    const sec::Authorization allow_nothing = allow("ns1/allow-nothing");
    const sec::Authorization allow_principal =
        allow("ns1/allow-client", rule(clause(M().principals({exact("cluster.local/ns/default/sa/client")}))));
    const sec::Authorization deny_other = deny("ns1/deny-other", rule(clause(M().namespaces({exact("other")}))));
    const sec::Authorization deny_other_too = deny("ns1/deny-other-too", rule(clause(M().source_ips({cidr("10.1.0.0/16")}))));
    const sec::Authorization deny_8080 = deny("ns1/deny-8080", rule(clause(M().destination_ports({8080}))));
    const sec::Authorization strict =
        deny("istio-system/istio_converted_static_strict", rule(clause(M().not_principals({presence()}))));
    const sec::Authorization global_allow = allow("/global-allow", rule(clause(M().destination_ports({8080}))));
    sec::Authorization unknown_action = deny("ns1/unknown-action", rule());
    unknown_action.set_action(static_cast<sec::Action>(7));

    struct Row {
      const char* name;
      std::vector<sec::Authorization> policies;
      Connection conn;
      bool allowed;
      R reason;
      std::string policy;
      std::vector<std::string> dry_run;
    };
    const std::vector<Row> rows = {
        {"no policies", {}, tls(), true, R::NoPolicies, "", {}},
        {"no policies: plaintext", {}, plaintext(), true, R::NoPolicies, "", {}},
        {"DENY not matching, no ALLOW", {deny_other}, tls(), true, R::NoPolicies, "", {}},
        {"DENY matching", {deny_other}, other(), false, R::ExplicitlyDenied, "ns1/deny-other", {}},
        {"DENY before ALLOW, whatever the order", {allow_other, deny_other}, other(), false, R::ExplicitlyDenied,
         "ns1/deny-other", {}},
        {"first matching DENY is named", {deny_8080, deny_other, deny_other_too}, other(), false, R::ExplicitlyDenied,
         "ns1/deny-other", {}},
        {"first matching DENY is named: port", {deny_8080, deny_other}, tls(), false, R::ExplicitlyDenied, "ns1/deny-8080", {}},
        {"ALLOW matching", {allow_default}, tls(), true, R::AllowedByPolicy, "ns1/allow-default", {}},
        {"ALLOW present but not matching", {allow_default}, other(), false, R::NotAllowed, "", {}},
        {"first matching ALLOW is named", {allow_other, allow_default, global_allow}, tls(), true, R::AllowedByPolicy,
         "ns1/allow-default", {}},
        {"ALLOW and non-matching DENY", {deny_other, allow_default}, tls(), true, R::AllowedByPolicy, "ns1/allow-default", {}},
        {"allow-nothing policy denies", {allow_nothing}, tls(), false, R::NotAllowed, "", {}},
        {"allow-nothing beside a matching ALLOW", {allow_nothing, allow_default}, tls(), true, R::AllowedByPolicy,
         "ns1/allow-default", {}},
        {"GLOBAL policy key", {global_allow}, tls(), true, R::AllowedByPolicy, "/global-allow", {}},
        {"STRICT denies plaintext", {strict}, plaintext(), false, R::ExplicitlyDenied,
         "istio-system/istio_converted_static_strict", {}},
        {"STRICT lets mTLS through", {strict}, tls(), true, R::NoPolicies, "", {}},
        {"STRICT with ALLOW: mTLS allowed by policy", {strict, allow_default}, tls(), true, R::AllowedByPolicy,
         "ns1/allow-default", {}},
        {"principal ALLOW fails without identity", {allow_principal}, plaintext(), false, R::NotAllowed, "", {}},
        {"principal ALLOW with identity", {allow_principal}, tls(), true, R::AllowedByPolicy, "ns1/allow-client", {}},
        {"unknown action is skipped", {unknown_action}, tls(), true, R::NoPolicies, "", {}},

        {"dry-run DENY matching is only recorded", {dry_run(deny_other)}, other(), true, R::NoPolicies, "",
         {"DENY ns1/deny-other would deny"}},
        {"dry-run DENY not matching records nothing", {dry_run(deny_other)}, tls(), true, R::NoPolicies, "", {}},
        {"dry-run DENY recorded before the enforcing DENY decides", {deny_other_too, dry_run(deny_other)}, other(), false,
         R::ExplicitlyDenied, "ns1/deny-other-too", {"DENY ns1/deny-other would deny"}},
        {"dry-run DENY recorded, ALLOW decides", {dry_run(deny_8080), allow_default}, tls(), true, R::AllowedByPolicy,
         "ns1/allow-default", {"DENY ns1/deny-8080 would deny"}},
        {"every matching dry-run DENY recorded", {dry_run(deny_8080), dry_run(deny_other)}, tls_as(kOther), true,
         R::NoPolicies, "", {"DENY ns1/deny-8080 would deny", "DENY ns1/deny-other would deny"}},
        {"dry-run ALLOW matching, no enforcing ALLOW", {dry_run(allow_default)}, tls(), true, R::NoPolicies, "",
         {"ALLOW ns1/allow-default would allow"}},
        {"dry-run ALLOW none matching, no enforcing ALLOW", {dry_run(allow_default)}, other(), true, R::NoPolicies, "",
         {"no dry-run ALLOW policy matched: enforcing them would deny"}},
        {"dry-run allow-nothing, no enforcing ALLOW", {dry_run(allow_nothing)}, tls(), true, R::NoPolicies, "",
         {"no dry-run ALLOW policy matched: enforcing them would deny"}},
        {"dry-run ALLOW matching does not allow", {dry_run(allow_default), allow_other}, tls(), false, R::NotAllowed, "",
         {"ALLOW ns1/allow-default would allow"}},
        {"dry-run ALLOW not matching beside an enforcing ALLOW: no note", {dry_run(allow_nothing), allow_default}, tls(),
         true, R::AllowedByPolicy, "ns1/allow-default", {}},
        {"enforcing DENY decides before dry-run ALLOW is consulted", {dry_run(allow_other), deny_other}, other(), false,
         R::ExplicitlyDenied, "ns1/deny-other", {}},
        {"dry-run STRICT on plaintext only recorded", {dry_run(strict)}, plaintext(), true, R::NoPolicies, "",
         {"DENY istio-system/istio_converted_static_strict would deny"}},
        {"dry-run both kinds", {dry_run(deny_8080), dry_run(allow_default), allow_other}, tls(), false, R::NotAllowed, "",
         {"DENY ns1/deny-8080 would deny", "ALLOW ns1/allow-default would allow"}},
    };
    for (const Row& row : rows) {
      CAPTURE(row.name);
      std::vector<const sec::Authorization*> ptrs;
      for (const auto& p : row.policies) ptrs.push_back(&p);
      const Decision d = evaluate(ptrs, row.conn);
      CHECK(d.allowed == row.allowed);
      CHECK(to_string(d.reason) == to_string(row.reason));
      CHECK(d.policy == row.policy);
      CHECK(d.dry_run_matches == row.dry_run);
    }
  }

  TEST_CASE("null entries (unknown policy names) are skipped") {
    const sec::Authorization allow_default = allow("ns1/allow-default", rule(clause(M().namespaces({exact("default")}))));
    const sec::Authorization* only_null[] = {nullptr};
    CHECK(evaluate(only_null, plaintext()).reason == Decision::Reason::NoPolicies);
    const sec::Authorization* with_null[] = {nullptr, &allow_default, nullptr};
    const Decision d = evaluate(with_null, tls());
    CHECK(d.reason == Decision::Reason::AllowedByPolicy);
    CHECK(d.policy == "ns1/allow-default");
    CHECK(evaluate(with_null, other()).reason == Decision::Reason::NotAllowed);
  }

  TEST_CASE("decision strings for logs") {
    using R = Decision::Reason;
    struct Row { Decision d; std::string_view want; };
    for (const Row& row : {
             Row{Decision{}, "allow: no allow policies"},
             Row{Decision{true, R::AllowedByPolicy, "ns/a", {}}, "allow: allowed by: ns/a"},
             Row{Decision{false, R::ExplicitlyDenied, "ns/d", {}}, "deny: explicitly denied by: ns/d"},
             Row{Decision{false, R::NotAllowed, "", {}}, "deny: allow policies exist, but none allowed"},
             Row{Decision{true, R::NoPolicies, "", {"DENY ns/x would deny", "ALLOW ns/y would allow"}},
                 "allow: no allow policies [dry-run: DENY ns/x would deny; ALLOW ns/y would allow]"},
         }) {
      CHECK(to_string(row.d) == row.want);
    }
    CHECK(to_string(R::NoPolicies) == "NoPolicies");
    CHECK(to_string(R::AllowedByPolicy) == "AllowedByPolicy");
    CHECK(to_string(R::ExplicitlyDenied) == "ExplicitlyDenied");
    CHECK(to_string(R::NotAllowed) == "NotAllowed");
  }

  TEST_CASE("policy keys") {
    CHECK(policy_key(allow("default/allow-web")) == "default/allow-web");
    CHECK(policy_key(allow("/mesh-wide")) == "/mesh-wide");
    sec::Authorization p;
    CHECK(policy_key(p) == "/");
  }
}
