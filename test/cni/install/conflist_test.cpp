// cni/install/conflist.h: inserting and removing our plugin entry in the text of a primary CNI's config,
// against goldens for typical primary CNIs (flannel, calico, kindnet, a bridge .conf, cilium with our entry
// already in it), and the errors for broken files.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "cni/install/config_json.h"
#include "cni/install/conflist.h"
#include "cni/plugin/cni_protocol.h"
#include "test/cni/install/install_test_support.h"

using namespace ambient;
using namespace ambient::cni;
using namespace ambient::cni::install;
using namespace ambient::cni::install::test_support;
namespace json = boost::json;

namespace {

json::value parse(const std::string& text, const std::string& what = "test") {
  auto v = parse_config_json(text, what);
  REQUIRE_MESSAGE(v.has_value(), std::string(v ? std::string() : v.error().message()));
  return *v;
}

std::vector<std::string> keys(const json::object& o) {
  std::vector<std::string> out;
  for (const auto& m : o) out.emplace_back(m.key());
  return out;
}

// Every object in `v`, depth first, as its key list: equal across two values = same key order everywhere.
void key_orders(const json::value& v, std::vector<std::vector<std::string>>& out) {
  if (const json::object* o = v.if_object()) {
    out.push_back(keys(*o));
    for (const auto& m : *o) key_orders(m.value(), out);
  } else if (const json::array* a = v.if_array()) {
    for (const auto& e : *a) key_orders(e, out);
  }
}

std::vector<std::vector<std::string>> key_orders(const json::value& v) {
  std::vector<std::vector<std::string>> out;
  key_orders(v, out);
  return out;
}

struct Fixture {
  std::string file;         // testdata/<file>, also the name passed to insert_plugin
  std::string output_name;  // the name the result must be written under
  bool single;              // a single-plugin file (converted into a list)
  std::size_t entry_index;  // where our entry must be in plugins
};

const std::vector<Fixture> kFixtures = {
    {"flannel.conflist", "flannel.conflist", false, 2},
    {"calico.conflist", "calico.conflist", false, 3},
    {"kindnet.conflist", "kindnet.conflist", false, 2},
    {"bridge.conf", "bridge.conflist", true, 1},
    {"with-ambient.conflist", "with-ambient.conflist", false, 1},  // replaced in place, not moved last
};

// The primary's own plugins as the runtime sees them: `original` as a list (a single plugin converted).
json::array their_plugins(const json::object& original, bool single) {
  json::array out;
  if (single) {
    json::object p;
    for (const auto& m : original) {
      if (m.key() != "cniVersion" && m.key() != "name") p[m.key()] = m.value();
    }
    out.emplace_back(std::move(p));
    return out;
  }
  for (const auto& p : original.at("plugins").as_array()) {
    if (p.as_object().at("type") != "ambient-cni") out.push_back(p);
  }
  return out;
}

}  // namespace

TEST_SUITE("cni/install/conflist") {
  TEST_CASE("insert: goldens for typical primary CNIs; ours last (or in place), theirs untouched, idempotent") {
    const json::object entry = golden_entry_json();
    for (const Fixture& f : kFixtures) {
      CAPTURE(f.file);
      const std::string input = testdata(f.file);
      auto edit = insert_plugin(f.file, input, entry);
      REQUIRE_MESSAGE(edit.has_value(), std::string(edit ? std::string() : edit.error().message()));
      check_golden(f.file + ".golden", edit->text);
      CHECK(edit->file_name == f.output_name);
      CHECK(edit->kind == (f.file == "with-ambient.conflist" ? EditKind::Updated : EditKind::Inserted));

      const json::object original = parse(input).as_object();
      const json::object out = parse(edit->text).as_object();
      const json::array& plugins = out.at("plugins").as_array();
      // Our entry where it belongs, exactly once, with our fields.
      REQUIRE(plugins.size() == their_plugins(original, f.single).size() + 1);
      CHECK(plugins[f.entry_index] == json::value(entry));
      // Their plugins: same values, same order, same key order inside.
      json::array theirs;
      for (std::size_t i = 0; i < plugins.size(); ++i) {
        if (i != f.entry_index) theirs.push_back(plugins[i]);
      }
      CHECK(theirs == their_plugins(original, f.single));
      CHECK(key_orders(theirs) == key_orders(their_plugins(original, f.single)));
      // The list's own fields kept (a converted file keeps its cniVersion and name, first).
      CHECK(out.at("cniVersion") == original.at("cniVersion"));
      CHECK(out.at("name") == original.at("name"));
      if (f.single) {
        CHECK(keys(out) == std::vector<std::string>{"cniVersion", "name", "plugins"});
      } else {
        CHECK(keys(out) == keys(original));
      }

      // Twice = once, byte for byte; the second insert reports nothing to write.
      auto again = insert_plugin(edit->file_name, edit->text, entry);
      REQUIRE(again.has_value());
      CHECK(again->kind == EditKind::Unchanged);
      CHECK(again->text == edit->text);
      CHECK(again->file_name == edit->file_name);
      CHECK(has_plugin(edit->file_name, edit->text).value_or(false));
    }
  }

  TEST_CASE("remove: restores the original semantics; removing twice or when absent is a no-op") {
    const json::object entry = golden_entry_json();
    for (const Fixture& f : kFixtures) {
      CAPTURE(f.file);
      const std::string input = testdata(f.file);
      auto inserted = insert_plugin(f.file, input, entry);
      REQUIRE(inserted.has_value());
      auto removed = remove_plugin(inserted->file_name, inserted->text);
      REQUIRE_MESSAGE(removed.has_value(), std::string(removed ? std::string() : removed.error().message()));
      CHECK(removed->kind == EditKind::Removed);
      CHECK(removed->file_name == inserted->file_name);
      CHECK_FALSE(has_plugin(removed->file_name, removed->text).value_or(true));

      const json::object original = parse(input).as_object();
      const json::object out = parse(removed->text).as_object();
      // What the runtime runs is what it ran before us: the same plugins, in the same order.
      CHECK(out.at("plugins").as_array() == their_plugins(original, f.single));
      CHECK(out.at("cniVersion") == original.at("cniVersion"));
      CHECK(out.at("name") == original.at("name"));
      if (!f.single && f.file != "with-ambient.conflist") {
        CHECK(json::value(out) == json::value(original));  // a list we added to is exactly the original again
        CHECK(key_orders(out) == key_orders(original));
      }

      auto twice = remove_plugin(removed->file_name, removed->text);
      REQUIRE(twice.has_value());
      CHECK(twice->kind == EditKind::Unchanged);
      CHECK(twice->text == removed->text);
    }
  }

  TEST_CASE("remove: golden for a file that held our entry; a file without it is returned byte for byte") {
    auto removed = remove_plugin("with-ambient.conflist", testdata("with-ambient.conflist"));
    REQUIRE(removed.has_value());
    CHECK(removed->kind == EditKind::Removed);
    check_golden("with-ambient.conflist.removed.golden", removed->text);

    for (const std::string file : {"flannel.conflist", "kindnet.conflist", "bridge.conf"}) {
      CAPTURE(file);
      const std::string input = testdata(file);
      auto r = remove_plugin(file, input);
      REQUIRE(r.has_value());
      CHECK(r->kind == EditKind::Unchanged);
      CHECK(r->text == input);  // kindnet's tabs and odd commas included: nothing to write
      CHECK(r->file_name == file);
    }
  }

  TEST_CASE("only entries of type ambient-cni are ours: duplicates collapse into the first, look-alikes stay") {
    const std::string text = R"({"cniVersion":"1.0.0","name":"n","plugins":[
      {"type":"ambient-cni","agent_socket":"/old"},
      {"type":"bridge","name":"ambient-cni"},
      {"type":"ambient-cni-legacy"},
      {"type":"ambient-cni","agent_socket":"/older"},
      {"type":"portmap"}]})";
    auto edit = insert_plugin("x.conflist", text, golden_entry_json());
    REQUIRE(edit.has_value());
    const json::array plugins = parse(edit->text).as_object().at("plugins").as_array();
    REQUIRE(plugins.size() == 4);
    CHECK(plugins[0] == json::value(golden_entry_json()));
    CHECK(plugins[1].as_object().at("type") == "bridge");
    CHECK(plugins[2].as_object().at("type") == "ambient-cni-legacy");
    CHECK(plugins[3].as_object().at("type") == "portmap");

    auto removed = remove_plugin("x.conflist", text);
    REQUIRE(removed.has_value());
    const json::array left = parse(removed->text).as_object().at("plugins").as_array();
    REQUIRE(left.size() == 3);
    CHECK(left[0].as_object().at("type") == "bridge");
    CHECK(left[1].as_object().at("type") == "ambient-cni-legacy");
    CHECK(left[2].as_object().at("type") == "portmap");
  }

  TEST_CASE("values and key order survive: numbers keep their kind, strings their bytes") {
    struct Row {
      const char* name;
      std::string text;
    };
    const std::vector<Row> rows = {
        {"key order, not sorted", R"({"z":1,"name":"n","a":2,"cniVersion":"0.3.1","plugins":[{"zz":0,"type":"b","aa":0}]})"},
        {"doubles stay doubles", R"({"name":"n","plugins":[{"type":"b","mtu":1.0,"f":0.1,"big":1.5e300,"neg":-2.5e-7,"z":-0.0}]})"},
        {"integers at the edges", R"({"name":"n","plugins":[{"type":"b","u":18446744073709551615,"i":-9223372036854775808,"o":1e999}]})"},
        {"strings: escapes and UTF-8", R"({"name":"n\u00e9","plugins":[{"type":"b","s":"tab\t\"q\" \\ \u0001 é 日本 /"}]})"},
        {"empty containers and null", R"({"name":"n","plugins":[{"type":"b","e":{},"a":[],"n":null,"t":true,"nest":[[[]],{"x":{}}]}]})"},
        {"extra list fields", R"({"cniVersion":"1.1.0","name":"n","disableCheck":true,"cniVersions":["1.0.0","1.1.0"],"plugins":[{"type":"b"}]})"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.name);
      auto edit = insert_plugin("x.conflist", row.text, golden_entry_json());
      REQUIRE_MESSAGE(edit.has_value(), std::string(edit ? std::string() : edit.error().message()));
      auto removed = remove_plugin("x.conflist", edit->text);
      REQUIRE(removed.has_value());
      const json::value original = parse(row.text);
      const json::value back = parse(removed->text);
      CHECK(back == original);
      CHECK(key_orders(back) == key_orders(original));
      // Kinds, not only values: Boost.JSON's == says 1.0 == 1, the runtime's parser may not.
      const json::object& p0 = back.as_object().at("plugins").as_array()[0].as_object();
      const json::object& o0 = original.as_object().at("plugins").as_array()[0].as_object();
      for (const auto& m : o0) {
        CAPTURE(std::string(m.key()));
        CHECK(p0.at(m.key()).kind() == m.value().kind());
      }
      auto again = insert_plugin("x.conflist", edit->text, golden_entry_json());
      REQUIRE(again.has_value());
      CHECK(again->text == edit->text);
    }
  }

  TEST_CASE("a single configuration of type ambient-cni: insert makes it our one-entry list; remove refuses") {
    const std::string text = R"({"cniVersion":"1.0.0","name":"solo","type":"ambient-cni","agent_socket":"/old"})";
    auto edit = insert_plugin("99-solo.conf", text, golden_entry_json());
    REQUIRE(edit.has_value());
    CHECK(edit->file_name == "99-solo.conflist");
    const json::array plugins = parse(edit->text).as_object().at("plugins").as_array();
    REQUIRE(plugins.size() == 1);
    CHECK(plugins[0] == json::value(golden_entry_json()));

    auto removed = remove_plugin("99-solo.conf", text);
    REQUIRE_FALSE(removed.has_value());
    CHECK(removed.error().context.find("99-solo.conf: the whole file is an ambient-cni plugin") == 0);
  }

  TEST_CASE("errors say which file and where; nothing is produced to write") {
    struct Row {
      std::string file;  // a fixture, or "" to use `text`
      std::string text;
      ErrorKind kind;
      std::string message;  // the error's context starts with this
    };
    const std::vector<Row> rows = {
        {"malformed.conflist", "", ErrorKind::Parse, "malformed.conflist: JSON syntax error at line 7 column 7 (byte"},
        {"plugins-not-array.conflist", "", ErrorKind::InvalidArgument, "plugins-not-array.conflist: plugins: expected an array, got object"},
        {"plugin-not-object.conflist", "", ErrorKind::InvalidArgument, "plugin-not-object.conflist: plugins[2]: expected an object, got string \"bandwidth\""},
        {"", "[1,2]", ErrorKind::InvalidArgument, "x.conflist: expected a JSON object (a CNI network configuration), got array"},
        {"", R"({"cniVersion":"0.3.1","name":"n"})", ErrorKind::InvalidArgument, "x.conflist: neither a network configuration list"},
        {"", "", ErrorKind::Parse, "x.conflist: JSON syntax error at line 1 column 1"},
        {"", R"({"name":"n","plugins":[]} trailing)", ErrorKind::Parse, "x.conflist: JSON syntax error at line 1 column 27"},
        {"", std::string(kMaxConfigFileBytes + 1, ' '), ErrorKind::ResourceExhausted, "x.conflist: 1048577 bytes, more than"},
    };
    for (const Row& row : rows) {
      const std::string name = row.file.empty() ? "x.conflist" : row.file;
      const std::string text = row.file.empty() ? row.text : testdata(row.file);
      CAPTURE(row.message);
      auto inserted = insert_plugin(name, text, golden_entry_json());
      REQUIRE_FALSE(inserted.has_value());
      CHECK(inserted.error().kind == row.kind);
      CHECK_MESSAGE(inserted.error().context.starts_with(row.message), std::string(inserted.error().context));
      auto removed = remove_plugin(name, text);
      REQUIRE_FALSE(removed.has_value());
      CHECK(removed.error().context == inserted.error().context);
      auto has = has_plugin(name, text);
      REQUIRE_FALSE(has.has_value());
      CHECK(has.error().context == inserted.error().context);
    }
  }

  TEST_CASE("our entry's fields are what the plugin binary reads (as libcni hands an entry over)") {
    PluginEntry e;
    e.agent_socket = "/run/agent/api.sock";
    e.log_level = "warn";
    e.exclude_namespaces = {"kube-system", "istio-system", "monitoring"};
    e.service_account = "ambient-node";
    auto edit = insert_plugin("flannel.conflist", testdata("flannel.conflist"), plugin_entry_json(e));
    REQUIRE(edit.has_value());
    const json::object list = parse(edit->text).as_object();
    // libcni's buildOneConfig: the list's name and cniVersion are injected into each plugin's config.
    json::object one = list.at("plugins").as_array().back().as_object();
    one["name"] = list.at("name");
    one["cniVersion"] = list.at("cniVersion");
    auto config = plugin::parse_network_config(json::serialize(one));
    REQUIRE_MESSAGE(config.has_value(), std::string(config ? std::string() : config.error().message()));
    CHECK(config->type == "ambient-cni");
    CHECK(config->name == "cbr0");
    CHECK(config->agent_socket == e.agent_socket);
    CHECK(config->log_level == e.log_level);
    CHECK(config->exclude_namespaces == e.exclude_namespaces);
    CHECK(config->service_account == e.service_account);

    const json::object without_sa = plugin_entry_json(golden_entry());
    CHECK(keys(without_sa) ==
          std::vector<std::string>{"type", "name", "agent_socket", "plugin_log_level", "exclude_namespaces"});
  }

  TEST_CASE("conflist_name") {
    CHECK(conflist_name("10-bridge.conf") == "10-bridge.conflist");
    CHECK(conflist_name("10-bridge.json") == "10-bridge.conflist");
    CHECK(conflist_name("10-calico.conflist") == "10-calico.conflist");
    CHECK(conflist_name("noext") == "noext.conflist");
    CHECK(conflist_name("a.b/c") == "a.b/c.conflist");
  }
}
