#pragma once
// Our plugin's entry in the node's CNI configuration, without I/O: inserting it into the text of the
// primary CNI's config file, removing it, and finding it. Table-tested (test/cni/install/conflist_test.cpp)
// against goldens of typical primary CNIs (flannel, calico, kindnet, bridge).
//
// File shapes (CNI SPEC.md; libcni reads "*.conflist" as a list, "*.conf" and "*.json" as one plugin):
//  - a network configuration list: {"cniVersion", "name", "plugins": [{"type": ...}, ...], ...};
//  - a single plugin configuration: {"cniVersion", "name", "type", ...}.
// A runtime calls the plugins of a list in order at ADD; ours is chained last so that prevResult holds the
// pod's addresses (cni/plugin/cni_protocol.h).
//
// Contracts:
//  - insert: a list gets our entry appended to "plugins"; when an entry of type "ambient-cni" is already
//    there it is replaced in place (and any further ones dropped), so inserting twice gives byte-identical
//    output. A single configuration becomes a list, as Istio converts it:
//    {"cniVersion", "name", "plugins": [<the old object minus cniVersion and name>, ours]} (cniVersion and
//    name only when the old object had them), to be written under a ".conflist" name.
//  - remove: drops every entry of type "ambient-cni" from "plugins" and nothing else; without one the text
//    is returned unchanged (byte for byte).
//  - Everything else keeps its keys, their order and values (json_pretty.h), printed with a 2-space indent.
//  - Errors name the file, and the JSON line/column or the field: "10-calico.conflist: plugins[2]: expected
//    an object, got number 3". Nothing here writes, so bad input is never overwritten.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "common/base/result.h"

namespace ambient::cni::install {

// The "type" of our entry: the plugin binary's file name in the CNI bin dir.
inline constexpr std::string_view kPluginType = "ambient-cni";
// Config files larger than this are refused (CNI configs are a few KiB; this bounds what we read).
inline constexpr std::size_t kMaxConfigFileBytes = 1024 * 1024;

// The fields of our entry (cni/plugin/cni_protocol.h NetworkConfig reads them back).
struct PluginEntry {
  std::string agent_socket;                     // "agent_socket": the node agent's API socket
  std::string log_level = "info";               // "plugin_log_level"
  std::vector<std::string> exclude_namespaces;  // "exclude_namespaces": pods the plugin passes through
  std::string service_account;                  // "service_account": omitted when empty
};

// {"type": "ambient-cni", "name": "ambient-cni", "agent_socket", "plugin_log_level", "exclude_namespaces"
//  [, "service_account"]}, in that order.
boost::json::object plugin_entry_json(const PluginEntry& entry);

// What an insert or remove did to a file.
enum class EditKind {
  Unchanged,  // the file already was what we want: `text` is the input, nothing to write
  Inserted,   // our entry was absent and is now appended (a single configuration became a list)
  Updated,    // our entry was there but differed (fields, position of duplicates, formatting): replaced
  Removed,    // our entry (or entries) was there and is gone
};

std::string_view to_string(EditKind kind) noexcept;

struct ConfigEdit {
  EditKind kind = EditKind::Unchanged;
  std::string file_name;  // the name to write `text` under: the input's, or "<stem>.conflist" for a converted file
  std::string text;       // the whole new file
};

// `file_name` is used for the output name and in errors. Parse (JSON syntax, with line and column) or
// InvalidArgument (shape: not an object, neither "plugins" nor "type", plugins not an array, an entry not
// an object), or ResourceExhausted when `text` is larger than kMaxConfigFileBytes.
Result<ConfigEdit> insert_plugin(std::string_view file_name, std::string_view text, const boost::json::object& entry);
Result<ConfigEdit> remove_plugin(std::string_view file_name, std::string_view text);

// Whether `text` (a list or a single configuration) holds an entry of type "ambient-cni"; errors as above.
Result<bool> has_plugin(std::string_view file_name, std::string_view text);

// "10-bridge.conf" -> "10-bridge.conflist"; "x.json" -> "x.conflist"; "x.conflist" unchanged.
std::string conflist_name(std::string_view file_name);

}  // namespace ambient::cni::install
