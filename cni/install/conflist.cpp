#include "cni/install/conflist.h"

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include "cni/api/json_fields.h"
#include "cni/install/config_json.h"
#include "cni/install/json_pretty.h"

namespace ambient::cni::install {

namespace json = boost::json;

namespace {

// A parsed config file: the document (an object) and whether it is a list ("plugins") or a single plugin.
struct ParsedConfig {
  json::value doc;
  bool is_list = false;
};

Error in_file(std::string_view file_name, const Error& e) { return Error{e.kind, fmt::format("{}: {}", file_name, e.context), e.code}; }

Result<ParsedConfig> parse_config(std::string_view file_name, std::string_view text) {
  if (text.size() > kMaxConfigFileBytes) {
    return errorf(ErrorKind::ResourceExhausted, "{}: {} bytes, more than the {} a CNI config file may have", file_name,
                  text.size(), kMaxConfigFileBytes);
  }
  auto doc = parse_config_json(text, file_name);  // "<file>: JSON syntax error at line L column C (byte B): ..."
  if (!doc) return std::move(doc).error();
  auto reader = JsonObjectReader::open(*doc, "");
  if (!reader) {
    return errorf(ErrorKind::InvalidArgument, "{}: expected a JSON object (a CNI network configuration), got {}",
                  file_name, describe_json(*doc));
  }
  ParsedConfig parsed;
  if (reader->find("plugins") != nullptr) {
    auto plugins = reader->array("plugins", true);
    if (!plugins) return in_file(file_name, plugins.error());
    for (std::size_t i = 0; i < (*plugins)->size(); ++i) {
      const json::value& p = (**plugins)[i];
      if (!p.is_object()) {
        return errorf(ErrorKind::InvalidArgument, "{}: plugins[{}]: expected an object, got {}", file_name, i,
                      describe_json(p));
      }
    }
    parsed.is_list = true;
  } else if (reader->find("type") == nullptr) {
    return errorf(ErrorKind::InvalidArgument,
                  "{}: neither a network configuration list (no \"plugins\") nor a single plugin configuration (no "
                  "\"type\")",
                  file_name);
  }
  parsed.doc = std::move(*doc);
  return parsed;
}

bool is_ours(const json::value& plugin) {
  const json::object* o = plugin.if_object();
  if (o == nullptr) return false;
  const json::value* type = o->if_contains("type");
  return type != nullptr && type->is_string() && type->get_string() == kPluginType;
}

// {"cniVersion", "name", "plugins": [<single minus cniVersion and name>]}: how Istio converts a single
// configuration into a list. The object is rebuilt rather than erased from: Boost.JSON 1.81's
// object::erase moves the last member into the hole, which would reorder the keys.
json::object to_list(const json::object& single) {
  json::object list;
  for (std::string_view key : {"cniVersion", "name"}) {
    if (const json::value* v = single.if_contains(key)) list[key] = *v;
  }
  json::object first;
  for (const auto& member : single) {
    const std::string_view key = member.key();
    if (key != "cniVersion" && key != "name") first[key] = member.value();
  }
  json::array plugins;
  plugins.emplace_back(std::move(first));
  list["plugins"] = std::move(plugins);
  return list;
}

}  // namespace

std::string_view to_string(EditKind kind) noexcept {
  switch (kind) {
    case EditKind::Unchanged: return "unchanged";
    case EditKind::Inserted: return "inserted";
    case EditKind::Updated: return "updated";
    case EditKind::Removed: return "removed";
  }
  return "?";
}

json::object plugin_entry_json(const PluginEntry& entry) {
  json::object o;
  o["type"] = kPluginType;
  o["name"] = kPluginType;
  o["agent_socket"] = entry.agent_socket;
  o["plugin_log_level"] = entry.log_level;
  json::array excluded;
  for (const auto& ns : entry.exclude_namespaces) excluded.emplace_back(ns);
  o["exclude_namespaces"] = std::move(excluded);
  if (!entry.service_account.empty()) o["service_account"] = entry.service_account;
  return o;
}

std::string conflist_name(std::string_view file_name) {
  if (file_name.ends_with(".conflist")) return std::string(file_name);
  const auto dot = file_name.rfind('.');
  const auto slash = file_name.rfind('/');
  const bool has_ext = dot != std::string_view::npos && (slash == std::string_view::npos || dot > slash);
  return std::string(has_ext ? file_name.substr(0, dot) : file_name) + ".conflist";
}

Result<ConfigEdit> insert_plugin(std::string_view file_name, std::string_view text, const json::object& entry) {
  auto parsed = parse_config(file_name, text);
  if (!parsed) return std::move(parsed).error();
  json::object doc = std::move(parsed->doc.get_object());
  ConfigEdit edit;
  if (!parsed->is_list) {
    doc = to_list(doc);
    edit.file_name = conflist_name(file_name);
  } else {
    edit.file_name = std::string(file_name);
  }
  json::array& plugins = doc["plugins"].get_array();  // checked by parse_config, or made by to_list
  bool found = false;
  for (std::size_t i = 0; i < plugins.size();) {
    if (!is_ours(plugins[i])) {
      ++i;
    } else if (!found) {
      plugins[i] = entry;  // the first one is replaced in place
      found = true;
      ++i;
    } else {
      plugins.erase(plugins.begin() + static_cast<std::ptrdiff_t>(i));  // duplicates would run us twice
    }
  }
  if (!found) plugins.emplace_back(entry);
  edit.text = pretty_json(doc);
  if (edit.text == text && edit.file_name == file_name) {
    edit.kind = EditKind::Unchanged;
  } else {
    edit.kind = found ? EditKind::Updated : EditKind::Inserted;
  }
  return edit;
}

Result<ConfigEdit> remove_plugin(std::string_view file_name, std::string_view text) {
  auto parsed = parse_config(file_name, text);
  if (!parsed) return std::move(parsed).error();
  ConfigEdit edit{EditKind::Unchanged, std::string(file_name), std::string(text)};
  if (!parsed->is_list) {
    if (is_ours(parsed->doc)) {
      return errorf(ErrorKind::InvalidArgument,
                    "{}: the whole file is an ambient-cni plugin configuration (delete the file instead)", file_name);
    }
    return edit;
  }
  json::object& doc = parsed->doc.get_object();
  json::array& plugins = doc["plugins"].get_array();
  const std::size_t before = plugins.size();
  for (std::size_t i = 0; i < plugins.size();) {
    if (is_ours(plugins[i])) {
      plugins.erase(plugins.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  if (plugins.size() == before) return edit;
  edit.kind = EditKind::Removed;
  edit.text = pretty_json(doc);
  return edit;
}

Result<bool> has_plugin(std::string_view file_name, std::string_view text) {
  auto parsed = parse_config(file_name, text);
  if (!parsed) return std::move(parsed).error();
  if (!parsed->is_list) return is_ours(parsed->doc);
  const json::value* plugins = parsed->doc.get_object().if_contains("plugins");  // an array: parse_config
  for (const json::value& p : plugins->get_array()) {
    if (is_ours(p)) return true;
  }
  return false;
}

}  // namespace ambient::cni::install
