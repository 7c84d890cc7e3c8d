// fuzz_cni_conflist: the installer's edits of the node's CNI config file (cni/install/conflist.h), on what a
// primary CNI (or anyone with write access to /etc/cni/net.d) may have left in it. Every input is one file's
// text, edited as the installer does: insert_plugin (as "10-x.conf": a list keeps its shape, a single plugin
// is converted), has_plugin, remove_plugin; plus pretty_json on what parses, and pick_primary_config on the
// input's lines taken as a directory listing.
//
// Invariants:
//  - errors are Parse, InvalidArgument or ResourceExhausted and name the file first;
//  - insert's output is a list holding our entry exactly once, and is a fixed point: inserting again gives
//    byte-identical text (EditKind::Unchanged), under the name insert chose (a single plugin's file is renamed
//    *.conflist, a list keeps its name);
//  - remove(insert(x)) holds no entry of ours, and its plugins are x's own (others' entries untouched, in
//    order); removing again changes nothing; remove on a file without our entry returns it byte for byte;
//  - has_plugin agrees with insert's kind (Inserted = there was none);
//  - parse_config_json accepts what parse_json accepts, with the same structure (numbers aside: it rounds
//    them correctly);
//  - pretty_json round trip: parse_config_json(pretty(v)) == v, and printing that again gives the same text;
//  - pick_primary_config returns one of the names: a config name, not the skipped one, the smallest such.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "cni/api/json_fields.h"
#include "cni/install/config_json.h"
#include "cni/install/conflist.h"
#include "cni/install/json_pretty.h"
#include "cni/install/primary_config.h"
#include "test/fuzz/fuzz_support.h"

namespace {

using namespace ambient;
using namespace ambient::cni;
using namespace ambient::cni::install;
namespace json = boost::json;

constexpr std::string_view kFile = "10-x.conf";

const json::object& entry() {
  static const json::object e = [] {
    PluginEntry p;
    p.agent_socket = "/var/run/ambient-cni/agent.sock";
    p.log_level = "debug";
    p.exclude_namespaces = {"kube-system"};
    p.service_account = "ambient";
    return plugin_entry_json(p);
  }();
  return e;
}

void check_edit_error(const Error& e) {
  fuzz::check_error(e, {ErrorKind::Parse, ErrorKind::InvalidArgument, ErrorKind::ResourceExhausted});
  FUZZ_CHECK(e.context.starts_with(std::string(kFile) + ": "), "error does not name the file: {}", e.context);
}

bool is_ours(const json::value& v) {
  const json::object* o = v.if_object();
  const json::value* t = o ? o->if_contains("type") : nullptr;
  return t != nullptr && t->is_string() && t->get_string() == kPluginType;
}

// Equal as we write them: same values, same number kinds, same key order everywhere (Boost.JSON's == ignores
// key order and says 1 == 1.0).
bool same_json(const json::value& a, const json::value& b) { return pretty_json(a) == pretty_json(b); }

json::value must_parse(const std::string& text, std::string_view what) {
  auto v = parse_config_json(text, what);
  FUZZ_CHECK(v.has_value(), "{} is not JSON ({}): {}", what, v ? "" : v.error().context, text);
  return std::move(*v);
}

// The plugins the runtime would run for `doc` without ours (a single plugin: itself minus cniVersion/name).
json::array their_plugins(const json::object& doc) {
  json::array out;
  const json::value* plugins = doc.if_contains("plugins");
  if (plugins != nullptr && plugins->is_array()) {
    for (const auto& p : plugins->get_array()) {
      if (!is_ours(p)) out.push_back(p);
    }
    return out;
  }
  json::object single;
  for (const auto& m : doc) {
    if (m.key() != "cniVersion" && m.key() != "name") single[m.key()] = m.value();
  }
  if (!is_ours(json::value(single))) out.emplace_back(std::move(single));
  return out;
}

void fuzz_edits(std::string_view text) {
  auto had = has_plugin(kFile, text);
  auto inserted = insert_plugin(kFile, text, entry());
  auto removed_original = remove_plugin(kFile, text);
  if (!inserted) {
    check_edit_error(inserted.error());
    FUZZ_CHECK(!had.has_value() && had.error().context == inserted.error().context, "has_plugin disagrees on {}",
               inserted.error().context);
    if (!removed_original) check_edit_error(removed_original.error());
    return;
  }
  FUZZ_CHECK(had.has_value(), "has_plugin failed where insert_plugin did not: {}", had ? "" : had.error().context);
  FUZZ_CHECK((inserted->kind == EditKind::Inserted) == !*had, "insert kind {} but has_plugin {}",
             to_string(inserted->kind), *had);
  // A single plugin is converted and renamed; a list keeps its name (even a misnamed one: renaming it would
  // change which file the runtime reads).
  const json::value original = must_parse(std::string(text), "input");
  const json::value* list_plugins = original.as_object().if_contains("plugins");
  const bool was_list = list_plugins != nullptr && !list_plugins->is_null();
  FUZZ_CHECK(inserted->file_name == (was_list ? "10-x.conf" : "10-x.conflist"), "output name {}", inserted->file_name);
  FUZZ_CHECK((inserted->kind == EditKind::Unchanged) == (was_list && inserted->text == text),
             "kind {} for a {} whose text {}", to_string(inserted->kind), was_list ? "list" : "single plugin",
             inserted->text == text ? "stayed" : "changed");

  const json::value out = must_parse(inserted->text, "insert output");
  const json::array& plugins = out.as_object().at("plugins").as_array();
  FUZZ_CHECK(std::count_if(plugins.begin(), plugins.end(), is_ours) == 1, "our entry is not there exactly once");
  for (const auto& p : plugins) {
    if (is_ours(p)) FUZZ_CHECK(p == json::value(entry()), "our entry has other fields");
  }

  auto again = insert_plugin(inserted->file_name, inserted->text, entry());
  FUZZ_CHECK(again.has_value(), "insert of our own output failed: {}", again ? "" : again.error().context);
  FUZZ_CHECK(again->kind == EditKind::Unchanged && again->text == inserted->text, "insert is not idempotent");

  auto removed = remove_plugin(inserted->file_name, inserted->text);
  FUZZ_CHECK(removed.has_value() && removed->kind == EditKind::Removed, "remove after insert did not remove");
  const json::value back = must_parse(removed->text, "remove output");
  FUZZ_CHECK(same_json(back.as_object().at("plugins"), their_plugins(original.as_object())),
             "remove(insert(x)) changed the others' plugins");
  auto twice = remove_plugin(removed->file_name, removed->text);
  FUZZ_CHECK(twice.has_value() && twice->kind == EditKind::Unchanged && twice->text == removed->text,
             "remove is not idempotent");

  if (removed_original) {
    if (removed_original->kind == EditKind::Unchanged) {
      FUZZ_CHECK(removed_original->text == text, "remove of an absent entry changed the text");
      FUZZ_CHECK(!*had, "remove found nothing but has_plugin did");
    }
  } else {
    check_edit_error(removed_original.error());  // only a single plugin of our own type
    FUZZ_CHECK(*had, "remove refused a file without our entry: {}", removed_original.error().context);
  }
}

// Same number kinds and structure, doubles aside (Boost.JSON's may be off by an ulp or NaN).
bool same_shape(const json::value& a, const json::value& b) {
  if (a.kind() != b.kind()) return false;
  if (a.is_double()) return true;
  if (const json::object* oa = a.if_object()) {
    const json::object& ob = b.get_object();
    if (oa->size() != ob.size()) return false;
    auto ib = ob.begin();
    for (const auto& m : *oa) {
      if (m.key() != ib->key() || !same_shape(m.value(), ib->value())) return false;
      ++ib;
    }
    return true;
  }
  if (const json::array* aa = a.if_array()) {
    const json::array& ab = b.get_array();
    if (aa->size() != ab.size()) return false;
    for (std::size_t i = 0; i < aa->size(); ++i) {
      if (!same_shape((*aa)[i], ab[i])) return false;
    }
    return true;
  }
  return a == b;
}

void fuzz_pretty(std::string_view text) {
  auto v = parse_config_json(text, "input");
  // The same grammar as Boost.JSON's own parser (cni/api/json_fields.h), numbers aside.
  auto boost_v = parse_json(text, "input");
  FUZZ_CHECK(v.has_value() == boost_v.has_value(), "parse_config_json {} where parse_json {}",
             v ? "accepts" : v.error().context, boost_v ? "accepts" : boost_v.error().context);
  if (!v) return fuzz::check_error(v.error(), {ErrorKind::Parse});
  FUZZ_CHECK(same_shape(*v, *boost_v), "parse_config_json and parse_json disagree beyond doubles");
  const std::string printed = pretty_json(*v);
  const json::value back = must_parse(printed, "pretty_json output");
  FUZZ_CHECK(back == *v, "pretty_json changed the value");
  FUZZ_CHECK(pretty_json(back) == printed, "pretty_json is not a fixed point");
}

void fuzz_pick(std::string_view text) {
  std::vector<std::string> names;
  while (!text.empty() && names.size() < 64) {
    const auto nl = text.find('\n');
    names.emplace_back(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  const std::string skip = "02-ambient-cni.conflist";
  auto pick = pick_primary_config(names, "", skip, "/host/etc/cni/net.d");
  std::vector<std::string> candidates;
  for (const auto& n : names) {
    if (is_cni_config_name(n) && n != skip) candidates.push_back(n);
  }
  if (candidates.empty()) {
    FUZZ_CHECK(!pick.has_value() && pick.error().kind == ErrorKind::NotFound, "picked from no candidate");
    return;
  }
  FUZZ_CHECK(pick.has_value(), "no pick among {} candidates", candidates.size());
  FUZZ_CHECK(*pick == *std::min_element(candidates.begin(), candidates.end()), "picked {} not the first", *pick);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::write_seeds_if_asked({
      {"flannel.conflist", R"({
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
})"},
      {"bridge.conf", R"({"cniVersion": "0.4.0", "name": "bridge", "type": "bridge", "bridge": "cni0", "isGateway": true,
 "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}})"},
      {"with_ours.conflist", R"({"cniVersion": "1.0.0", "name": "cilium", "plugins": [
  {"type": "cilium-cni", "mtu": 1450.0},
  {"type": "ambient-cni", "agent_socket": "/old", "exclude_namespaces": ["kube-system"]},
  {"type": "ambient-cni"},
  {"type": "portmap", "capabilities": {"portMappings": true}}]})"},
      {"numbers_strings.conflist", R"({"name": "n\u00e9", "plugins": [{"type": "b", "u": 18446744073709551615,
 "i": -9223372036854775808, "d": -0.0, "e": 1e999, "s": "\t\"é\u0001", "a": [], "o": {}}]})"},
      {"listing", "10-calico.conflist\n02-ambient-cni.conflist\n05-a.conf\ncalico-kubeconfig\n.ambient-cni-XyZ\n"},
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::as_text(data, size);
  fuzz_edits(text);
  fuzz_pretty(text);
  fuzz_pick(text);
  return 0;
}
