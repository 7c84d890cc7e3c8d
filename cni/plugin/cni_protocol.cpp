#include "cni/plugin/cni_protocol.h"

#include <algorithm>

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "cni/api/json_fields.h"

namespace ambient::cni::plugin {

namespace json = boost::json;

namespace {

Error cni_error(int code, std::string text) { return Error{ErrorKind::InvalidArgument, std::move(text), code}; }

Error with_code(Error e, int code) {
  e.code = code;
  return e;
}

}  // namespace

bool is_supported_version(std::string_view version) {
  return std::find(std::begin(kSupportedVersions), std::end(kSupportedVersions), version) !=
         std::end(kSupportedVersions);
}

std::string peek_cni_version(std::string_view text) {
  auto doc = parse_json(text, "stdin");
  if (!doc || !doc->is_object()) return {};
  const json::value* v = doc->as_object().if_contains("cniVersion");
  if (v == nullptr || !v->is_string()) return {};
  return std::string(v->as_string().data(), v->as_string().size());
}

Result<NetworkConfig> parse_network_config(std::string_view text) {
  if (text.size() > kMaxStdinBytes) {
    return cni_error(kCniDecodingFailure, fmt::format("network configuration larger than {} bytes", kMaxStdinBytes));
  }
  auto doc = parse_json(text, "network configuration");
  if (!doc) return with_code(std::move(doc).error(), kCniDecodingFailure);
  auto reader = JsonObjectReader::open(*doc, "");
  if (!reader) return with_code(std::move(reader).error(), kCniInvalidConfig);
  const JsonObjectReader& r = *reader;

  NetworkConfig config;
  auto version = r.required_string("cniVersion");
  if (!version) return with_code(std::move(version).error(), kCniInvalidConfig);
  if (!is_supported_version(*version)) {
    return cni_error(kCniIncompatibleVersion,
                     fmt::format("cniVersion {} is not supported (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)",
                                 utf8_prefix(*version, 40)));
  }
  config.cni_version = std::move(*version);

  struct StringField {
    std::string_view key;
    std::string* out;
  };
  const StringField strings[] = {{"name", &config.name},
                                 {"type", &config.type},
                                 {"agent_socket", &config.agent_socket},
                                 {"service_account", &config.service_account},
                                 {"plugin_log_level", &config.log_level}};
  for (const StringField& f : strings) {
    if (r.find(f.key) == nullptr) continue;  // keep the default
    auto value = r.optional_string(f.key);
    if (!value) return with_code(std::move(value).error(), kCniInvalidConfig);
    *f.out = std::move(*value);
  }
  if (config.agent_socket.empty() || config.agent_socket.front() != '/') {
    return cni_error(kCniInvalidConfig, fmt::format("agent_socket: '{}' is not an absolute path", config.agent_socket));
  }

  auto excluded = r.array("exclude_namespaces", false);
  if (!excluded) return with_code(std::move(excluded).error(), kCniInvalidConfig);
  if (*excluded != nullptr) {
    for (std::size_t i = 0; i < (*excluded)->size(); ++i) {
      const json::value& item = (**excluded)[i];
      if (!item.is_string()) {
        return cni_error(kCniInvalidConfig,
                         fmt::format("exclude_namespaces[{}]: expected a string, got {}", i, describe_json(item)));
      }
      config.exclude_namespaces.emplace_back(item.as_string().data(), item.as_string().size());
    }
  }

  if (const json::value* prev = r.find("prevResult")) {
    if (!prev->is_object()) {
      return cni_error(kCniInvalidConfig, "prevResult: expected an object, got " + describe_json(*prev));
    }
    config.prev_result = prev->as_object();
  }
  return config;
}

Result<std::map<std::string, std::string, std::less<>>> parse_cni_args(std::string_view text) {
  std::map<std::string, std::string, std::less<>> out;
  while (!text.empty()) {
    const auto semi = text.find(';');
    const std::string_view pair = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
    if (pair.empty()) continue;  // "a=1;;b=2", a trailing ';'
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return cni_error(kCniInvalidEnvironment,
                       fmt::format("CNI_ARGS: '{}' is not KEY=VALUE", pair.substr(0, 100)));
    }
    out[std::string(pair.substr(0, eq))] = std::string(pair.substr(eq + 1));
  }
  return out;
}

Result<std::vector<std::string>> prev_result_addresses(const json::object& prev_result) {
  std::vector<std::string> out;
  const json::value* ips = prev_result.if_contains("ips");
  if (ips == nullptr || ips->is_null()) return out;  // a result without addresses (e.g. a bridge without IPAM)
  if (!ips->is_array()) {
    return cni_error(kCniInvalidConfig, "prevResult.ips: expected an array, got " + describe_json(*ips));
  }
  const json::array& list = ips->as_array();
  for (std::size_t i = 0; i < list.size(); ++i) {
    const json::object* entry = list[i].if_object();
    const json::value* address = entry == nullptr ? nullptr : entry->if_contains("address");
    if (address == nullptr || !address->is_string()) {
      const std::string got = address == nullptr ? describe_json(list[i]) : describe_json(*address);
      return cni_error(kCniInvalidConfig, fmt::format("prevResult.ips[{}].address: expected a string, got {}", i, got));
    }
    out.emplace_back(address->as_string().data(), address->as_string().size());
  }
  return out;
}

std::string version_reply(std::string_view cni_version) {
  json::object o;
  o["cniVersion"] = cni_version.empty() ? kDefaultCniVersion : cni_version;
  json::array supported;
  for (std::string_view v : kSupportedVersions) supported.emplace_back(v);
  o["supportedVersions"] = std::move(supported);
  return json::serialize(o);
}

std::string error_reply(std::string_view cni_version, int code, std::string_view msg, std::string_view details) {
  json::object o;
  o["cniVersion"] = cni_version.empty() ? kDefaultCniVersion : cni_version;
  o["code"] = code;
  o["msg"] = msg;
  if (!details.empty()) o["details"] = details;
  return json::serialize(o);
}

std::string add_result(const NetworkConfig& config) {
  json::object result = config.prev_result.value_or(json::object());
  if (!result.contains("cniVersion")) result["cniVersion"] = config.cni_version;
  return json::serialize(result);
}

}  // namespace ambient::cni::plugin
