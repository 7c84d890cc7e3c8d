#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/hbone/connect_headers.h"

using namespace ambient;
using namespace ambient::hbone;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

tcp::endpoint ep(std::string_view ip, std::uint16_t port) { return {asio::ip::make_address(std::string(ip)), port}; }

Baggage full_baggage() {
  Baggage b;
  b.cluster = "Kubernetes";
  b.namespace_name = "default";
  b.workload_type = WorkloadType::Deployment;
  b.workload_name = "productpage-v1";
  b.service = "productpage";
  b.revision = "v1";
  b.region = "us-west1";
  b.zone = "us-west1-a";
  return b;
}

bool has_control_bytes(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

bool clean(const Baggage& b) {
  for (const auto* f : {&b.cluster, &b.namespace_name, &b.workload_name, &b.service, &b.revision, &b.region, &b.zone})
    if (has_control_bytes(*f)) return false;
  return true;
}

std::string repeat(std::string_view s, std::size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (std::size_t i = 0; i < n; ++i) out.append(s);
  return out;
}

}  // namespace

TEST_SUITE("common/hbone/connect_headers") {
  // ------------------------------------------------------------------ baggage

  TEST_CASE("baggage: built in ztunnel's key order, absent keys omitted (golden)") {
    struct Row {
      std::string name;
      Baggage in;
      std::string want;
    };
    Baggage pod;
    pod.cluster = "c1";
    pod.namespace_name = "ns1";
    pod.workload_type = WorkloadType::Pod;
    pod.workload_name = "sleep-7d8f9";
    Baggage cron;
    cron.workload_type = WorkloadType::CronJob;
    cron.workload_name = "nightly";
    cron.zone = "z1";
    Baggage job;
    job.workload_type = WorkloadType::Job;
    job.workload_name = "migrate";
    job.revision = "latest";
    Baggage only_service;
    only_service.service = "reviews";
    Baggage encoded;
    encoded.service = "a b,c;d%e\"f\\g";
    encoded.revision = "v=1/ü";
    const std::vector<Row> rows{
        {"full", full_baggage(),
         "k8s.cluster.name=Kubernetes,k8s.namespace.name=default,k8s.deployment.name=productpage-v1,"
         "service.name=productpage,service.version=v1,cloud.region=us-west1,cloud.availability_zone=us-west1-a"},
        {"pod, no service", pod, "k8s.cluster.name=c1,k8s.namespace.name=ns1,k8s.pod.name=sleep-7d8f9"},
        {"cronjob", cron, "k8s.cronjob.name=nightly,cloud.availability_zone=z1"},
        {"job", job, "k8s.job.name=migrate,service.version=latest"},
        {"service only", only_service, "service.name=reviews"},
        {"nothing", Baggage{}, ""},
        {"percent-encoded outside baggage-octet and %", encoded,
         "service.name=a%20b%2Cc%3Bd%25e%22f%5Cg,service.version=v=1/%C3%BC"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      CHECK(build_baggage(row.in) == row.want);
      CHECK(parse_baggage(row.want) == row.in);  // round trip
    }
    CHECK(to_string(WorkloadType::Deployment) == "deployment");
    CHECK(to_string(WorkloadType::CronJob) == "cronjob");
    CHECK(to_string(WorkloadType::Pod) == "pod");
    CHECK(to_string(WorkloadType::Job) == "job");
  }

  TEST_CASE("baggage: parsing table") {
    struct Row {
      std::string name;
      std::string in;
      Baggage want;
    };
    auto with = [](auto setter) {
      Baggage b;
      setter(b);
      return b;
    };
    const std::vector<Row> rows{
        {"ztunnel's test string", "k8s.cluster.name=K1,k8s.namespace.name=NS1,k8s.deployment.name=N1,service.name=N2,service.version=V1",
         with([](Baggage& b) {
           b.cluster = "K1";
           b.namespace_name = "NS1";
           b.workload_name = "N1";
           b.service = "N2";
           b.revision = "V1";
         })},
        {"ztunnel's empty values are absent", "k8s.cluster.name=,k8s.namespace.name=,k8s.deployment.name=,service.name=,service.version=",
         Baggage{}},
        {"whitespace around everything", " \tk8s.cluster.name = K1 ,\tservice.name=N2\t, ",
         with([](Baggage& b) {
           b.cluster = "K1";
           b.service = "N2";
         })},
        {"properties are ignored", "service.name=N2;prop=1;flag, cloud.region=r ; x",
         with([](Baggage& b) {
           b.service = "N2";
           b.region = "r";
         })},
        {"unknown keys are ignored", "foo=bar,k8s.replicaset.name=rs,userId=alice,service.name=s",
         with([](Baggage& b) { b.service = "s"; })},
        {"workload type from the key", "k8s.cronjob.name=cj", with([](Baggage& b) {
           b.workload_type = WorkloadType::CronJob;
           b.workload_name = "cj";
         })},
        {"pod key", "k8s.pod.name=p-1", with([](Baggage& b) {
           b.workload_type = WorkloadType::Pod;
           b.workload_name = "p-1";
         })},
        {"empty members are skipped", ",,service.name=s,, ,", with([](Baggage& b) { b.service = "s"; })},
        {"a repeated key keeps the last", "service.name=a,service.name=b", with([](Baggage& b) { b.service = "b"; })},
        {"a repeated empty key clears", "service.name=a,service.name=", Baggage{}},
        {"'=' is a value character", "service.version=a=b", with([](Baggage& b) { b.revision = "a=b"; })},
        {"percent-decoding", "service.name=%41b%2c%20c", with([](Baggage& b) { b.service = "Ab, c"; })},
        {"bad escape %zz skips the member", "service.name=a%zz,cloud.region=r", with([](Baggage& b) { b.region = "r"; })},
        {"truncated escape %4", "service.name=a%4,cloud.region=r", with([](Baggage& b) { b.region = "r"; })},
        {"lone %", "service.name=%", Baggage{}},
        {"decoded control byte", "service.name=a%0Ab,cloud.region=r", with([](Baggage& b) { b.region = "r"; })},
        {"decoded NUL", "service.name=%00", Baggage{}},
        {"raw quote in value", "service.name=a\"b,cloud.region=r", with([](Baggage& b) { b.region = "r"; })},
        {"raw space inside value", "service.name=a b,cloud.region=r", with([](Baggage& b) { b.region = "r"; })},
        {"raw backslash", "service.name=a\\b", Baggage{}},
        {"raw high byte", "service.name=\xc3\xbc", Baggage{}},
        {"no '='", "service.name,cloud.region=r", with([](Baggage& b) { b.region = "r"; })},
        {"empty key", "=x,cloud.region=r", with([](Baggage& b) { b.region = "r"; })},
        {"key with a space", "service .name=x", Baggage{}},
        {"keys are case-sensitive", "Service.Name=x", Baggage{}},
        {"only separators", ";;;,,,===", Baggage{}},
        {"empty", "", Baggage{}},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      const auto got = parse_baggage(row.in);
      CHECK(got == row.want);
      CHECK(clean(got));
    }
  }

  TEST_CASE("baggage: 8192 bytes and 64 members at most, whole members only") {
    // A member that ends past byte 8192 is ignored; one that ends before it counts.
    const std::string filler = "x=" + std::string(8000, 'a');
    CHECK(parse_baggage(filler + ",service.name=s").service == "s");             // 8017 bytes
    CHECK(parse_baggage(filler + "," + std::string(200, 'b') + "=1,service.name=s").service.empty());
    const std::string exact = filler + "," + std::string(8192 - filler.size() - 1 - 2 - 15, 'c') + "=1";
    REQUIRE(exact.size() == 8192 - 15);  // + ",service.name=s" ends at byte 8192
    CHECK(parse_baggage(exact + ",service.name=s").service == "s");  // ends exactly at 8192
    CHECK(parse_baggage(exact + ",service.name=st").service.empty());

    std::string members;
    for (int i = 0; i < 63; ++i) members += "k" + std::to_string(i) + "=v,";
    CHECK(parse_baggage(members + "service.name=s").service == "s");            // the 64th member
    CHECK(parse_baggage(members + "k63=v,service.name=s").service.empty());     // the 65th
    CHECK(parse_baggage(members + ",,, ,service.name=s").service == "s");       // empty ones do not count

    // Huge inputs: bounded work, no crash.
    CHECK(parse_baggage(std::string(1 << 20, ',')) == Baggage{});
    CHECK(parse_baggage(repeat("service.name=%", 100000)) == Baggage{});
    CHECK(parse_baggage("service.name=" + std::string(1 << 20, 'v')) == Baggage{});
  }

  TEST_CASE("baggage: every field of a header block, limits shared") {
    const h2::Headers headers{
        {":authority", "10.0.0.1:8080"},
        {"baggage", "k8s.cluster.name=K1"},
        {"x-other", "service.name=nope"},
        {"baggage", "k8s.namespace.name=NS1, service.name=N2"},
    };
    Baggage want;
    want.cluster = "K1";
    want.namespace_name = "NS1";
    want.service = "N2";
    CHECK(parse_baggage(headers) == want);
    CHECK(parse_baggage(h2::Headers{}) == Baggage{});

    const h2::Headers big{{"baggage", "x=" + std::string(8185, 'a')}, {"baggage", "service.name=s"}};
    CHECK(parse_baggage(big).service.empty());  // 8187 + 1 bytes used, 14 more do not fit
  }

  TEST_CASE("baggage: random bytes never crash and never yield control bytes") {
    std::mt19937 rng(1928);
    const std::string alphabet = "k8s.cluster.name=service.version;%,=\t \"\\\x01\x7f\xff"
                                 "0123456789abcdefABCDEF";
    for (int i = 0; i < 2000; ++i) {
      std::string in(rng() % 200, ' ');
      for (auto& c : in) c = alphabet[rng() % alphabet.size()];
      CHECK(clean(parse_baggage(in)));
    }
  }

  // ------------------------------------------------------------------ forwarded

  TEST_CASE("forwarded: built as ztunnel sends it (golden)") {
    struct Row {
      std::string name;
      tcp::endpoint source;
      std::string host;
      std::string want;
    };
    const std::vector<Row> rows{
        {"IPv4", ep("10.0.0.1", 34567), "", "for=\"10.0.0.1:34567\""},
        {"IPv4 with service host", ep("10.0.0.1", 34567), "reviews.default.svc.cluster.local",
         "for=\"10.0.0.1:34567\";host=reviews.default.svc.cluster.local"},
        {"IPv6", ep("2001:db8::1", 4711), "", "for=\"[2001:db8::1]:4711\""},
        {"IPv6 with host", ep("fd00::7", 80), "svc.ns.svc.cluster.local",
         "for=\"[fd00::7]:80\";host=svc.ns.svc.cluster.local"},
        {"v4-mapped is IPv4", ep("::ffff:10.1.2.3", 5), "", "for=\"10.1.2.3:5\""},
        {"host that is not a token is quoted", ep("10.0.0.1", 1), "a b\"c\\d", "for=\"10.0.0.1:1\";host=\"a b\\\"c\\\\d\""},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      const auto built = build_forwarded(row.source, row.host);
      CHECK(built == row.want);
      auto parsed = parse_forwarded(built);
      REQUIRE(parsed);
      CHECK(parsed->host == row.host);
      auto node = parse_forwarded_node(parsed->for_node);
      REQUIRE(node);
      CHECK(node->port() == row.source.port());
      auto want_ip = row.source.address();
      if (want_ip.is_v6() && want_ip.to_v6().is_v4_mapped())
        want_ip = asio::ip::make_address_v4(asio::ip::v4_mapped, want_ip.to_v6());
      CHECK(node->address() == want_ip);
    }
  }

  TEST_CASE("forwarded: parsing table (RFC 7239 examples and more)") {
    struct Row {
      std::string name;
      std::string in;
      std::optional<Forwarded> want;  // nullopt: Parse error
    };
    const std::vector<Row> rows{
        {"ztunnel's shape", "for=\"10.0.0.1:34567\";host=reviews.default.svc.cluster.local",
         Forwarded{"10.0.0.1:34567", "reviews.default.svc.cluster.local"}},
        {"RFC: obfuscated", "for=\"_gazonk\"", Forwarded{"_gazonk", ""}},
        {"RFC: IPv6, key case", "For=\"[2001:db8:cafe::17]:4711\"", Forwarded{"[2001:db8:cafe::17]:4711", ""}},
        {"RFC: several pairs", "for=192.0.2.60;proto=http;by=203.0.113.43", Forwarded{"192.0.2.60", ""}},
        {"RFC: two elements, first wins", "for=192.0.2.43, for=198.51.100.17", Forwarded{"192.0.2.43", ""}},
        {"keys case-insensitive", "HOST=example.com;FoR=1.2.3.4", Forwarded{"1.2.3.4", "example.com"}},
        {"whitespace around separators", "  for = 1.2.3.4 ; host = h  ", Forwarded{"1.2.3.4", "h"}},
        {"escapes in quoted-string", "for=\"a\\\"b\\\\c\";host=\"x\\y\"", Forwarded{"a\"b\\c", "xy"}},
        {"empty pairs", ";;for=1.2.3.4;;", Forwarded{"1.2.3.4", ""}},
        {"leading empty elements", " , ,for=1.2.3.4", Forwarded{"1.2.3.4", ""}},
        {"host only", "host=h", Forwarded{"", "h"}},
        {"empty header", "", Forwarded{}},
        {"empty quoted value", "for=\"\"", Forwarded{"", ""}},
        {"later elements are not looked at", "for=1.2.3.4, for=\"unterminated", Forwarded{"1.2.3.4", ""}},
        {"a repeat in a later element is fine", "for=a, for=b;for=c", Forwarded{"a", ""}},
        {"unknown", "for=unknown", Forwarded{"unknown", ""}},
        {"obs-text in quotes", "host=\"caf\xc3\xa9\"", Forwarded{"", "caf\xc3\xa9"}},

        {"unterminated quote", "for=\"10.0.0.1", std::nullopt},
        {"backslash at the end", "for=\"a\\", std::nullopt},
        {"no '='", "for", std::nullopt},
        {"no '=' then more", "for;host=h", std::nullopt},
        {"no value", "for=", std::nullopt},
        {"no value before ';'", "for=;host=h", std::nullopt},
        {"no key", "=1.2.3.4", std::nullopt},
        {"repeated for", "for=1.2.3.4;for=5.6.7.8", std::nullopt},
        {"repeated host, other case", "host=a;HOST=b", std::nullopt},
        {"space inside a token", "for=a b", std::nullopt},
        {"unquoted IPv6 brackets", "for=[::1]:80", std::nullopt},
        {"unquoted ip:port", "for=10.0.0.1:80", std::nullopt},
        {"control byte in quotes", std::string("for=\"a\x01\""), std::nullopt},
        {"escaped control byte", std::string("for=\"a\\\x01\""), std::nullopt},
        {"garbage after a quoted value", "for=\"a\"b", std::nullopt},
        {"NUL", std::string("for=a\0b", 7), std::nullopt},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      auto got = parse_forwarded(row.in);
      if (row.want) {
        REQUIRE_MESSAGE(got, (got ? "" : got.error().message()));
        CHECK(*got == *row.want);
      } else {
        REQUIRE(!got);
        CHECK(got.error().kind == ErrorKind::Parse);
      }
    }
  }

  TEST_CASE("forwarded: huge inputs") {
    auto long_token = parse_forwarded("for=" + std::string(1 << 20, 'a'));
    REQUIRE(long_token);
    CHECK(long_token->for_node.size() == (1u << 20));
    CHECK(!parse_forwarded("for=\"" + std::string(1 << 20, 'a')));           // never closed
    CHECK(parse_forwarded("for=x" + repeat(", for=\"y", 100000)));           // rest not parsed
    CHECK(parse_forwarded(repeat(";", 1 << 20) + "host=h")->host == "h");
    CHECK(!parse_forwarded(repeat("a=b;", 1000) + "for=1;for=2"));
  }

  TEST_CASE("forwarded: nodes as endpoints") {
    struct Row {
      std::string in;
      std::optional<tcp::endpoint> want;
    };
    const std::vector<Row> rows{
        {"10.0.0.1:34567", ep("10.0.0.1", 34567)},
        {"[2001:db8::1]:4711", ep("2001:db8::1", 4711)},
        {"10.0.0.1", ep("10.0.0.1", 0)},
        {"[2001:db8::1]", ep("2001:db8::1", 0)},
        {"1.2.3.4:65535", ep("1.2.3.4", 65535)},
        {"1.2.3.4:65536", std::nullopt},
        {"1.2.3.4:", std::nullopt},
        {"1.2.3.4:_obf", std::nullopt},
        {"[2001:db8::1]:_obf", std::nullopt},
        {"[2001:db8::1]x", std::nullopt},
        {"[2001:db8::1", std::nullopt},
        {"[1.2.3.4]:80", std::nullopt},
        {"unknown", std::nullopt},
        {"_gazonk", std::nullopt},
        {"example.com:80", std::nullopt},
        {"", std::nullopt},
        {"1.2.3.4:8080000", std::nullopt},
    };
    for (const auto& row : rows) {
      CAPTURE(row.in);
      CHECK(parse_forwarded_node(row.in) == row.want);
    }
  }

  // ------------------------------------------------------------------ traceparent

  TEST_CASE("traceparent: W3C example parses and prints back exactly (golden)") {
    const std::string example = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    auto t = parse_traceparent(example);
    REQUIRE(t);
    CHECK(t->trace_id_hex() == "0af7651916cd43dd8448eb211c80319c");
    CHECK(t->span_id_hex() == "b7ad6b7169203331");
    CHECK(t->trace_id[0] == 0x0a);
    CHECK(t->trace_id[15] == 0x9c);
    CHECK(t->span_id[7] == 0x31);
    CHECK(t->flags == 0x01);
    CHECK(t->header() == example);

    TraceParent fixed;
    for (std::size_t i = 0; i < fixed.trace_id.size(); ++i) fixed.trace_id[i] = static_cast<std::uint8_t>(i);
    fixed.span_id[7] = 0xff;
    CHECK(fixed.header() == "00-000102030405060708090a0b0c0d0e0f-00000000000000ff-00");
  }

  TEST_CASE("traceparent: random ids, ztunnel's shape, unique") {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
      const auto t = TraceParent::random();
      const auto h = t.header();
      REQUIRE(h.size() == 55);
      CHECK(h.substr(0, 3) == "00-");
      CHECK(h.substr(52) == "-00");
      CHECK(h[35] == '-');
      auto back = parse_traceparent(h);
      REQUIRE(back);
      CHECK(*back == t);
      seen.insert(t.trace_id_hex());
      seen.insert(t.span_id_hex());
    }
    CHECK(seen.size() == 2000);
  }

  TEST_CASE("traceparent: rejects") {
    const std::string ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    REQUIRE(parse_traceparent(ok));
    auto with = [&](std::size_t pos, char c) {
      std::string s = ok;
      s[pos] = c;
      return s;
    };
    struct Row {
      std::string name;
      std::string in;
    };
    const std::vector<Row> rows{
        {"empty", ""},
        {"one short", ok.substr(0, 54)},
        {"one long", ok + "0"},
        {"W3C future version with more fields", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-ab"},
        {"version 01", with(1, '1')},
        {"version ff", "ff" + ok.substr(2)},
        {"non-hex version", with(0, 'x')},
        {"uppercase trace id", with(5, 'F')},
        {"uppercase span id", with(40, 'A')},
        {"non-hex trace id", with(3, 'g')},
        {"non-hex span id", with(51, 'z')},
        {"non-hex flags", with(54, 'x')},
        {"uppercase flags", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0A"},
        {"bad separator", with(2, '_')},
        {"bad separator 2", with(35, '.')},
        {"bad separator 3", with(52, ' ')},
        {"all-zero trace id", "00-00000000000000000000000000000000-b7ad6b7169203331-00"},
        {"all-zero span id", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-00"},
        {"spaces", " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-00"},
        {"NUL", with(10, '\0')},
        {"huge", std::string(1 << 20, '0')},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      auto r = parse_traceparent(row.in);
      REQUIRE(!r);
      CHECK(r.error().kind == ErrorKind::Parse);
    }
  }
}
