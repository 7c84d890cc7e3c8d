#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <boost/json/serialize.hpp>

#include "cni/kube/watch_event.h"

using namespace ambient;
using namespace ambient::cni::kube;
namespace json = boost::json;

namespace {

const char* kPod =
    R"({"metadata":{"name":"web-0","namespace":"shop","uid":"u-1","resourceVersion":"42",)"
    R"("managedFields":[{"manager":"kubelet"}]},"spec":{"nodeName":"n1"}})";

std::string event(std::string_view type, std::string_view object) {
  return fmt::format(R"({{"type":"{}","object":{}}})", type, object);
}

}  // namespace

TEST_SUITE("cni/kube/watch_event") {
  TEST_CASE("good events of each type") {
    struct Row {
      const char* name;
      std::string line;
      WatchEvent::Type type;
    };
    const std::vector<Row> rows = {
        {"ADDED", event("ADDED", kPod), WatchEvent::Type::Added},
        {"MODIFIED", event("MODIFIED", kPod), WatchEvent::Type::Modified},
        {"DELETED", event("DELETED", kPod), WatchEvent::Type::Deleted},
        {"BOOKMARK", event("BOOKMARK", R"({"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"77"}})"),
         WatchEvent::Type::Bookmark},
        {"ERROR", event("ERROR", R"({"kind":"Status","code":410,"reason":"Expired","message":"too old"})"),
         WatchEvent::Type::Error},
        {"CRLF line end", event("ADDED", kPod) + "\r", WatchEvent::Type::Added},
        {"cluster-scoped (no namespace)", event("ADDED", R"({"metadata":{"name":"shop","uid":"u-ns"}})"),
         WatchEvent::Type::Added},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      auto parsed = parse_watch_event(row.line);
      REQUIRE_MESSAGE(parsed, (parsed ? std::string() : parsed.error().message()));
      CHECK(parsed->type == row.type);
      CHECK(parsed->object.is_object());
    }
  }

  TEST_CASE("object events drop metadata.managedFields and keep the rest") {
    auto parsed = parse_watch_event(event("MODIFIED", kPod));
    REQUIRE(parsed);
    const auto& meta = parsed->object.at("metadata").as_object();
    CHECK(meta.if_contains("managedFields") == nullptr);
    CHECK(meta.at("name").as_string() == "web-0");
    CHECK(meta.at("resourceVersion").as_string() == "42");
    CHECK(parsed->object.at("spec").at("nodeName").as_string() == "n1");
  }

  TEST_CASE("malformed lines are InvalidArgument with the reason") {
    struct Row {
      const char* name;
      std::string line;
      const char* reason;  // a substring of the error
    };
    const std::vector<Row> rows = {
        {"empty", "", "empty line"},
        {"blank", "  \t", "empty line"},
        {"not JSON", "{not json", "JSON syntax error at line 1 column 2"},
        {"truncated", R"({"type":"ADDED","object":{"metadata":)", "JSON syntax error"},
        {"trailing garbage", event("ADDED", kPod) + " x", "unexpected characters after the JSON value"},
        {"an array", "[1,2]", "expected an object, got array"},
        {"no type", R"({"object":{}})", "type: missing"},
        {"type not a string", R"({"type":7,"object":{}})", "type: expected a string, got number 7"},
        {"unknown type", event("PATCHED", kPod), "type 'PATCHED' is not one of ADDED, MODIFIED, DELETED, BOOKMARK, ERROR"},
        {"lower-case type", event("added", kPod), "type 'added' is not one of"},
        {"no object", R"({"type":"ADDED"})", "watch event ADDED: object: missing"},
        {"null object", R"({"type":"ADDED","object":null})", "object: missing"},
        {"object not an object", R"({"type":"ADDED","object":"pod"})", "object: expected an object, got string"},
        {"no metadata", event("ADDED", R"({"spec":{}})"), "watch event ADDED: object: metadata: missing"},
        {"no name", event("ADDED", R"({"metadata":{"uid":"u"}})"), "metadata.name: missing"},
        {"empty name", event("MODIFIED", R"({"metadata":{"name":"","uid":"u"}})"), "metadata.name: empty"},
        {"no uid", event("DELETED", R"({"metadata":{"name":"a"}})"), "metadata.uid: missing"},
        {"uid not a string", event("ADDED", R"({"metadata":{"name":"a","uid":5}})"), "metadata.uid: expected a string"},
        {"namespace not a string", event("ADDED", R"({"metadata":{"name":"a","uid":"u","namespace":[]}})"),
         "metadata.namespace: expected a string"},
        {"a '/' in the name", event("ADDED", R"({"metadata":{"name":"a/b","uid":"u"}})"), "metadata.name: holds '/'"},
        {"a '/' in the namespace", event("ADDED", R"({"metadata":{"name":"a","namespace":"x/y","uid":"u"}})"),
         "metadata.namespace: holds '/'"},
        {"bookmark without resourceVersion", event("BOOKMARK", R"({"metadata":{}})"),
         "BOOKMARK: object.metadata.resourceVersion: missing"},
        {"bookmark with a numeric resourceVersion", event("BOOKMARK", R"({"metadata":{"resourceVersion":5}})"),
         "resourceVersion: missing or not a non-empty string"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      auto parsed = parse_watch_event(row.line);
      REQUIRE_FALSE(parsed);
      CHECK(parsed.error().kind == ErrorKind::InvalidArgument);
      CHECK_MESSAGE(parsed.error().context.find(row.reason) != std::string::npos, parsed.error().context);
    }
  }

  TEST_CASE("format_watch_event reads back the same event") {
    for (const auto* type : {"ADDED", "MODIFIED", "DELETED"}) {
      CAPTURE(type);
      auto first = parse_watch_event(event(type, kPod));
      REQUIRE(first);
      auto again = parse_watch_event(format_watch_event(*first));
      REQUIRE(again);
      CHECK(again->type == first->type);
      CHECK(again->object == first->object);
      CHECK(to_string(again->type) == std::string_view(type));
    }
  }

  TEST_CASE("Status objects: code and text") {
    const json::value gone = json::object{{"kind", "Status"}, {"code", 410}, {"reason", "Expired"},
                                          {"message", "too old resource version: 5 (12)"}};
    CHECK(status_code(gone) == 410);
    CHECK(status_text(gone) == "Expired: too old resource version: 5 (12)");
    CHECK(status_code(json::object{{"code", "410"}}) == 0);
    CHECK(status_code(json::object{}) == 0);
    CHECK(status_code(json::value(7)) == 0);
    CHECK(status_text(json::object{{"message", "m"}}) == "m");
    CHECK(status_text(json::object{{"reason", "Forbidden"}}) == "Forbidden");
  }
}
