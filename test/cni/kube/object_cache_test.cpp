#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <boost/json/parse.hpp>

#include "cni/kube/object_cache.h"
#include "cni/kube/object_meta.h"

using namespace ambient;
using namespace ambient::cni::kube;
namespace json = boost::json;

namespace {

json::object pod(std::string_view name, std::string_view uid, std::string_view rv, std::string_view ns = "default") {
  return json::parse(fmt::format(
                         R"({{"metadata":{{"name":"{}","namespace":"{}","uid":"{}","resourceVersion":"{}",)"
                         R"("managedFields":[{{}}]}}}})",
                         name, ns, uid, rv))
      .as_object();
}

std::vector<std::string> names(const std::vector<json::object>& objects) {
  std::vector<std::string> out;
  for (const auto& o : objects) out.emplace_back(o.at("metadata").at("name").as_string());
  return out;
}

}  // namespace

TEST_SUITE("cni/kube/object_cache") {
  TEST_CASE("upsert: added, changed on a new resourceVersion, unchanged on the same one") {
    ObjectCache cache;
    auto added = cache.upsert(pod("a", "u-a", "1"));
    REQUIRE(added);
    CHECK(added->changed);
    CHECK_FALSE(added->replaced);
    CHECK(added->object->at("metadata").as_object().if_contains("managedFields") == nullptr);

    auto same = cache.upsert(pod("a", "u-a", "1"));
    REQUIRE(same);
    CHECK_FALSE(same->changed);

    auto changed = cache.upsert(pod("a", "u-a", "2"));
    REQUIRE(changed);
    CHECK(changed->changed);
    CHECK(resource_version_of(*cache.find("default", "a")) == "2");
    CHECK(cache.size() == 1);
  }

  TEST_CASE("upsert: a namesake with another uid replaces the cached object") {
    ObjectCache cache;
    REQUIRE(cache.upsert(pod("a", "u-old", "1")));
    auto again = cache.upsert(pod("a", "u-new", "5"));
    REQUIRE(again);
    CHECK(again->changed);
    REQUIRE(again->replaced);
    CHECK(again->replaced->at("metadata").at("uid").as_string() == "u-old");
    CHECK(cache.find("default", "a")->at("metadata").at("uid").as_string() == "u-new");
  }

  TEST_CASE("upsert refuses an object without name or uid; erase; namespaces are part of the key") {
    ObjectCache cache;
    auto bad = cache.upsert(json::parse(R"({"metadata":{"name":"x"}})").as_object());
    REQUIRE_FALSE(bad);
    CHECK(bad.error().context.find("metadata.uid: missing") != std::string::npos);
    REQUIRE(cache.upsert(pod("a", "u-1", "1", "ns1")));
    REQUIRE(cache.upsert(pod("a", "u-2", "1", "ns2")));
    CHECK(cache.size() == 2);
    CHECK(cache.find("ns1", "a") != nullptr);
    CHECK_FALSE(cache.erase("ns3", "a"));
    auto gone = cache.erase("ns1", "a");
    REQUIRE(gone);
    CHECK(gone->at("metadata").at("uid").as_string() == "u-1");
    CHECK(cache.find("ns1", "a") == nullptr);
    CHECK(cache.size() == 1);
  }

  TEST_CASE("replace: the diff against the cache") {
    struct Row {
      const char* name;
      std::vector<json::object> before;
      std::vector<json::object> list;
      std::vector<std::string> upserted;  // keys
      std::vector<std::string> deleted;   // names
      std::size_t size;
    };
    const std::vector<Row> rows = {
        {"first list: all added", {}, {pod("a", "ua", "1"), pod("b", "ub", "1")}, {"default/a", "default/b"}, {}, 2},
        {"same list again: nothing", {pod("a", "ua", "1")}, {pod("a", "ua", "1")}, {}, {}, 1},
        {"changed, vanished, new",
         {pod("a", "ua", "1"), pod("b", "ub", "1"), pod("c", "uc", "1")},
         {pod("a", "ua", "1"), pod("c", "uc", "7"), pod("d", "ud", "8")},
         {"default/c", "default/d"},
         {"b"},
         3},
        {"recreated under the same name: delete then upsert",
         {pod("a", "u-old", "1")},
         {pod("a", "u-new", "9")},
         {"default/a"},
         {"a"},
         1},
        {"empty list deletes all", {pod("a", "ua", "1"), pod("b", "ub", "2")}, {}, {}, {"a", "b"}, 0},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      ObjectCache cache;
      for (const auto& o : row.before) REQUIRE(cache.upsert(o));
      auto diff = cache.replace(row.list);
      CHECK(diff.upserted == row.upserted);
      CHECK(names(diff.deleted) == row.deleted);
      CHECK(diff.invalid == 0);
      CHECK(cache.size() == row.size);
    }
  }

  TEST_CASE("replace skips items without name/uid and counts them") {
    ObjectCache cache;
    std::vector<json::object> list{pod("a", "ua", "1"), json::parse(R"({"metadata":{"name":"x"}})").as_object()};
    auto diff = cache.replace(std::move(list));
    CHECK(diff.invalid == 1);
    CHECK(diff.upserted == std::vector<std::string>{"default/a"});
    CHECK(cache.size() == 1);
  }
}
