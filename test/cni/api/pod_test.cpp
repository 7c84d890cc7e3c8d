#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include <boost/json/serialize.hpp>

#include "cni/api/cmdadd.h"
#include "cni/api/json_fields.h"
#include "cni/api/pod.h"
#include "cni/api/pod_json.h"
#include "test/cni/api/api_test_support.h"

using namespace ambient;
using namespace ambient::cni;
using ambient::cni::test_support::sample_spec;

TEST_SUITE("cni/api/pod") {
  TEST_CASE("validate_pod_spec: each field's rule, errors name the field") {
    struct Row {
      const char* name;
      std::function<void(PodSpec&)> edit;
      const char* error;  // substring; nullptr = valid
    };
    const std::vector<Row> rows = {
        {"sample is valid", [](PodSpec&) {}, nullptr},
        {"uid missing", [](PodSpec& s) { s.uid.clear(); }, "uid: missing"},
        {"uid with a slash", [](PodSpec& s) { s.uid = "a/b"; }, "uid: 'a/b' is not a pod uid"},
        {"uid of 128 chars", [](PodSpec& s) { s.uid = std::string(128, 'a'); }, nullptr},
        {"uid of 129 chars", [](PodSpec& s) { s.uid = std::string(129, 'a'); }, "uid:"},
        {"uid non-UUID id allowed", [](PodSpec& s) { s.uid = "cli_pod.1-A"; }, nullptr},
        {"name missing", [](PodSpec& s) { s.name.clear(); }, "name: missing"},
        {"name upper case", [](PodSpec& s) { s.name = "Web"; }, "name: 'Web' is not a DNS-1123 subdomain"},
        {"name with dots", [](PodSpec& s) { s.name = "web.v1.x"; }, nullptr},
        {"name ends in '-'", [](PodSpec& s) { s.name = "web-"; }, "name:"},
        {"name empty label", [](PodSpec& s) { s.name = "web..x"; }, "name:"},
        {"name of 253", [](PodSpec& s) { s.name = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                                   std::string(63, 'c') + "." + std::string(61, 'd'); }, nullptr},
        {"name of 254", [](PodSpec& s) { s.name = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                                   std::string(63, 'c') + "." + std::string(62, 'd'); }, "name:"},
        {"namespace missing", [](PodSpec& s) { s.namespace_.clear(); }, "namespace: missing"},
        {"namespace with a dot", [](PodSpec& s) { s.namespace_ = "a.b"; }, "namespace: 'a.b' is not a DNS-1123 label"},
        {"namespace underscore", [](PodSpec& s) { s.namespace_ = "kube_system"; }, "namespace:"},
        {"namespace of 63", [](PodSpec& s) { s.namespace_ = std::string(63, 'n'); }, nullptr},
        {"namespace of 64", [](PodSpec& s) { s.namespace_ = std::string(64, 'n'); }, "namespace:"},
        {"service account empty (unknown)", [](PodSpec& s) { s.service_account.clear(); }, nullptr},
        {"service account bad", [](PodSpec& s) { s.service_account = "-sa"; }, "serviceAccount: '-sa'"},
        {"netns missing", [](PodSpec& s) { s.netns.clear(); }, "netns: missing"},
        {"netns relative", [](PodSpec& s) { s.netns = "var/run/netns/x"; }, "netns: 'var/run/netns/x' is not an absolute path"},
        {"netns too long", [](PodSpec& s) { s.netns = "/" + std::string(4096, 'x'); }, "netns: path longer than 4096"},
        {"no ips", [](PodSpec& s) { s.ips.clear(); }, nullptr},
        {"ip not an address", [](PodSpec& s) { s.ips = {"10.0.0.5", "10.0.0.300"}; }, "ips[1]: '10.0.0.300' is not an IP address"},
        {"ip with prefix", [](PodSpec& s) { s.ips = {"10.0.0.5/24"}; }, "ips[0]:"},
        {"ip twice (different spelling)", [](PodSpec& s) { s.ips = {"fd00::5", "fd00:0::5"}; }, "ips[1]: 'fd00:0::5' is listed twice"},
        {"17 ips", [](PodSpec& s) {
           s.ips.clear();
           for (int i = 0; i < 17; ++i) s.ips.push_back("10.0.0." + std::to_string(i + 1));
         }, "ips: 17 addresses, more than the 16 allowed"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.name);
      PodSpec spec = sample_spec();
      row.edit(spec);
      const auto r = validate_pod_spec(spec);
      if (row.error == nullptr) {
        CHECK_MESSAGE(r.has_value(), (r ? std::string() : r.error().context));
      } else {
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().kind == ErrorKind::InvalidArgument);
        CHECK_MESSAGE(r.error().context.find(row.error) != std::string::npos, r.error().context);
      }
    }
  }

  TEST_CASE("validate_pod_spec uses the caller's field names") {
    PodSpec spec = sample_spec();
    spec.namespace_ = "Bad";
    const auto r = validate_pod_spec(spec, PodSpecFieldNames{.namespace_ = "PodNamespace"});
    REQUIRE_FALSE(r);
    CHECK(r.error().context.rfind("PodNamespace: 'Bad'", 0) == 0);
  }

  TEST_CASE("canonical_ip") {
    CHECK(*canonical_ip("10.0.0.5") == "10.0.0.5");
    CHECK(*canonical_ip("FD00:0:0::5") == "fd00::5");
    CHECK_FALSE(canonical_ip("10.0.0.5/32"));
    CHECK_FALSE(canonical_ip(""));
    CHECK_FALSE(canonical_ip(std::string_view("10.0.0.5\0x", 10)));
  }

  TEST_CASE("PodRecord JSON round trip") {
    PodRecord record;
    record.spec = sample_spec();
    record.spec.options.dns_capture = false;
    record.netns_id = net::NetnsId{12, 4026532000};
    record.status = PodStatus::Enabled;
    record.source = PodSourceKind::Cni;
    record.created_at = 1700000000000;
    record.updated_at = 1700000000123;
    const std::string text = boost::json::serialize(pod_record_to_json(record));
    auto doc = parse_json(text, "record");
    REQUIRE(doc);
    auto back = pod_record_from_json(*doc, "pods[0]");
    REQUIRE_MESSAGE(back, (back ? std::string() : back.error().context));
    CHECK(*back == record);
  }

  TEST_CASE("PodSpec from an enroll body: types, unknown keys and validation name the field") {
    struct Row {
      const char* body;
      const char* error;  // nullptr = valid
    };
    const std::vector<Row> rows = {
        {R"({"uid":"u1","name":"a","namespace":"ns","netns":"/n"})", nullptr},
        {R"({"uid":"u1","name":"a","namespace":"ns","netns":"/n","ips":["FD00::1"],"dnsCapture":true})", nullptr},
        {R"({"uid":"u1","name":"a","namespace":"ns"})", "netns: missing"},
        {R"({"uid":7,"name":"a","namespace":"ns","netns":"/n"})", "uid: expected a string, got number 7"},
        {R"({"uid":"u1","name":"a","namespace":"ns","netns":"/n","ips":"10.0.0.1"})", "ips: expected an array"},
        {R"({"uid":"u1","name":"a","namespace":"ns","netns":"/n","ips":[1]})", "ips[0]: expected a string"},
        {R"({"uid":"u1","name":"a","namespace":"ns","netns":"/n","dnsCapture":"yes"})", "dnsCapture: expected true or false"},
        {R"({"uid":"u1","name":"a","namespace":"ns","netns":"/n","serviceaccount":"x"})", "serviceaccount: unknown field"},
        {R"({"uid":"u1","name":"a","namespace":"NS","netns":"/n"})", "namespace: 'NS' is not a DNS-1123 label"},
        {R"([1,2])", "expected an object, got array"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.body);
      auto doc = parse_json(row.body, "body");
      REQUIRE(doc);
      auto spec = pod_spec_from_json(*doc, "");
      if (row.error == nullptr) {
        CHECK_MESSAGE(spec.has_value(), (spec ? std::string() : spec.error().context));
      } else {
        REQUIRE_FALSE(spec.has_value());
        CHECK_MESSAGE(spec.error().context.find(row.error) != std::string::npos, spec.error().context);
      }
    }
    auto doc = parse_json(R"({"uid":"u1","name":"a","namespace":"ns","netns":"/n","ips":["FD00::1"],"dnsCapture":true})", "b");
    auto spec = pod_spec_from_json(*doc, "");
    REQUIRE(spec);
    CHECK(spec->ips == std::vector<std::string>{"fd00::1"});
    CHECK(spec->options.dns_capture == true);
  }

  TEST_CASE("parse_json: syntax errors give line, column and byte") {
    auto r = parse_json("{\n  \"a\": 1,\n  \"b\": ]\n}", "the doc");
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Parse);
    CHECK_MESSAGE(r.error().context.find("the doc: JSON syntax error at line 3 column 8 (byte 19)") != std::string::npos,
                  r.error().context);
    auto trailing = parse_json("{} x", "t");
    REQUIRE_FALSE(trailing);
    CHECK(trailing.error().context.find("line 1 column 4") != std::string::npos);
    auto truncated = parse_json("{\"a\":", "t");
    REQUIRE_FALSE(truncated);
    CHECK(truncated.error().context.find("byte 5") != std::string::npos);
    CHECK(parse_json("  {\"a\":[1]} \n", "ok"));
  }
}

TEST_SUITE("cni/api/cmdadd") {
  TEST_CASE("the plugin's body maps to the spec the agent enrolls") {
    CmdAddRequest request{"/var/run/netns/cni-77", "web-0", "default", "uid-1", "web", {"10.0.0.5/24", "fd00::5/64"}};
    const std::string body = cmdadd_to_json(request);
    CHECK(body ==
          R"({"Netns":"/var/run/netns/cni-77","PodName":"web-0","PodNamespace":"default","PodUID":"uid-1",)"
          R"("ServiceAccount":"web","IPs":[{"Address":"10.0.0.5/24"},{"Address":"fd00::5/64"}]})");
    auto spec = pod_spec_from_cmdadd(body);
    REQUIRE_MESSAGE(spec, (spec ? std::string() : spec.error().context));
    CHECK(spec->netns == "/var/run/netns/cni-77");
    CHECK(spec->name == "web-0");
    CHECK(spec->namespace_ == "default");
    CHECK(spec->uid == "uid-1");
    CHECK(spec->service_account == "web");
    CHECK(spec->ips == std::vector<std::string>{"10.0.0.5", "fd00::5"});
  }

  TEST_CASE("Go-shaped bodies: any key case, CNI's lower-case address, net.IPNet objects, extra keys") {
    auto spec = pod_spec_from_cmdadd(
        R"({"netns":"/proc/1/ns/net","podName":"a","PODNAMESPACE":"b","PodUID":"u","Extra":1,)"
        R"("IPs":[{"interface":0,"address":"10.1.0.9/16","gateway":"10.1.0.1"},{"Address":{"IP":"fd00::9","Mask":"//8="}}]})");
    REQUIRE_MESSAGE(spec, (spec ? std::string() : spec.error().context));
    CHECK(spec->ips == std::vector<std::string>{"10.1.0.9", "fd00::9"});
    CHECK(spec->service_account.empty());
  }

  TEST_CASE("errors name the wire field") {
    struct Row {
      const char* body;
      const char* error;
    };
    const std::vector<Row> rows = {
        {R"({"Netns":"/n","PodName":"a","PodNamespace":"b"})", "PodUID: missing"},
        {R"({"Netns":"/n","PodName":"a","PodUID":"u"})", "PodNamespace: missing"},
        {R"({"Netns":"n","PodName":"a","PodNamespace":"b","PodUID":"u"})", "Netns: 'n' is not an absolute path"},
        {R"({"Netns":"/n","PodName":5,"PodNamespace":"b","PodUID":"u"})", "PodName: expected a string"},
        {R"({"Netns":"/n","PodName":"a","PodNamespace":"b","PodUID":"u","IPs":[{"Address":"10.0.0.300/24"}]})",
         "IPs[0].Address: '10.0.0.300' is not an IP address"},
        {R"({"Netns":"/n","PodName":"a","PodNamespace":"b","PodUID":"u","IPs":[{"Address":"10.0.0.3/x"}]})",
         "IPs[0].Address: '10.0.0.3/x' is not an address with a prefix length"},
        {R"({"Netns":"/n","PodName":"a","PodNamespace":"b","PodUID":"u","IPs":[{"Gateway":"1.1.1.1"}]})",
         "IPs[0].Address: missing"},
        {R"({"Netns":"/n")", "body: JSON syntax error at line 1 column 14"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.body);
      auto spec = pod_spec_from_cmdadd(row.body);
      REQUIRE_FALSE(spec.has_value());
      CHECK_MESSAGE(spec.error().context.find(row.error) != std::string::npos, spec.error().context);
    }
  }
}

TEST_SUITE("cni/api/utf8_prefix") {
  TEST_CASE("cuts at a character boundary, never inside one (error texts stay valid UTF-8 and JSON)") {
    using ambient::cni::utf8_prefix;
    CHECK(utf8_prefix("hello", 10) == "hello");
    CHECK(utf8_prefix("hello", 3) == "hel");
    const std::string two = "ab\xc4\xac";          // "abĬ": a 2-byte character at bytes 2-3
    CHECK(utf8_prefix(two, 3) == "ab");            // not "ab\xc4"
    CHECK(utf8_prefix(two, 4) == two);
    const std::string four = "\xf0\x9f\x98\x80x";  // U+1F600 then 'x'
    CHECK(utf8_prefix(four, 1).empty());
    CHECK(utf8_prefix(four, 3).empty());
    CHECK(utf8_prefix(four, 4) == "\xf0\x9f\x98\x80");
    CHECK(utf8_prefix("", 5).empty());
  }
}
