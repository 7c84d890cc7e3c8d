#include "cni/api/cmdadd.h"

#include <algorithm>
#include <cctype>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "cni/api/json_fields.h"

namespace ambient::cni {

namespace json = boost::json;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Go's encoding/json: an exact match first, else the first case-insensitive one. nullptr when absent
// or null.
const json::value* find_field(const json::object& o, std::string_view key) {
  if (const json::value* v = o.if_contains(key)) return v->is_null() ? nullptr : v;
  for (const auto& [k, v] : o) {
    if (iequals(std::string_view(k.data(), k.size()), key)) return v.is_null() ? nullptr : &v;
  }
  return nullptr;
}

Result<std::string> string_field(const json::object& o, std::string_view key, std::string_view path) {
  const json::value* v = find_field(o, key);
  if (v == nullptr) return std::string();
  const json::string* s = v->if_string();
  if (s == nullptr) return errorf(ErrorKind::InvalidArgument, "{}: expected a string, got {}", path, describe_json(*v));
  return std::string(s->data(), s->size());
}

// One entry of IPs[] -> the canonical IP text.
Result<std::string> ip_of_entry(const json::value& entry, const std::string& path) {
  const json::object* o = entry.if_object();
  if (o == nullptr) {
    return errorf(ErrorKind::InvalidArgument, "{}: expected an object, got {}", path, describe_json(entry));
  }
  const std::string address_path = path + ".Address";
  const json::value* address = find_field(*o, "Address");
  if (address == nullptr) return errorf(ErrorKind::InvalidArgument, "{}: missing", address_path);
  std::string text;
  if (const json::string* s = address->if_string()) {
    text.assign(s->data(), s->size());
    const auto slash = text.find('/');
    if (slash != std::string::npos) {
      const std::string_view prefix = std::string_view(text).substr(slash + 1);
      if (prefix.empty() || prefix.size() > 3 ||
          !std::all_of(prefix.begin(), prefix.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return errorf(ErrorKind::InvalidArgument, "{}: '{}' is not an address with a prefix length (ip/prefix)",
                      address_path, text);
      }
      text.resize(slash);
    }
  } else if (const json::object* ipnet = address->if_object()) {
    auto ip = string_field(*ipnet, "IP", address_path + ".IP");
    if (!ip) return std::move(ip).error();
    if (ip->empty()) return errorf(ErrorKind::InvalidArgument, "{}.IP: missing", address_path);
    text = std::move(*ip);
  } else {
    return errorf(ErrorKind::InvalidArgument, "{}: expected \"ip/prefix\" or {{\"IP\":..}}, got {}", address_path,
                  describe_json(*address));
  }
  auto ip = canonical_ip(text);
  if (!ip) return errorf(ErrorKind::InvalidArgument, "{}: {}", address_path, ip.error().context);
  return ip;
}

}  // namespace

std::string cmdadd_to_json(const CmdAddRequest& request) {
  json::object o;
  o["Netns"] = request.netns;
  o["PodName"] = request.pod_name;
  o["PodNamespace"] = request.pod_namespace;
  if (!request.pod_uid.empty()) o["PodUID"] = request.pod_uid;
  if (!request.service_account.empty()) o["ServiceAccount"] = request.service_account;
  json::array ips;
  for (const std::string& address : request.addresses) {
    json::object entry;
    entry["Address"] = address;
    ips.emplace_back(std::move(entry));
  }
  o["IPs"] = std::move(ips);
  return json::serialize(o);
}

Result<PodSpec> pod_spec_from_cmdadd(std::string_view body) {
  auto doc = parse_json(body, "body");
  if (!doc) return std::move(doc).error();
  const json::object* o = doc->if_object();
  if (o == nullptr) return errorf(ErrorKind::InvalidArgument, "body: expected an object, got {}", describe_json(*doc));

  PodSpec spec;
  struct Field {
    std::string_view key;
    std::string* out;
  };
  const Field fields[] = {{"Netns", &spec.netns},          {"PodName", &spec.name},
                          {"PodNamespace", &spec.namespace_}, {"PodUID", &spec.uid},
                          {"ServiceAccount", &spec.service_account}};
  for (const Field& f : fields) {
    auto value = string_field(*o, f.key, f.key);
    if (!value) return std::move(value).error();
    *f.out = std::move(*value);
  }
  if (const json::value* ips = find_field(*o, "IPs")) {
    const json::array* list = ips->if_array();
    if (list == nullptr) {
      return errorf(ErrorKind::InvalidArgument, "IPs: expected an array, got {}", describe_json(*ips));
    }
    if (list->size() > kMaxPodIps) {
      return errorf(ErrorKind::InvalidArgument, "IPs: {} addresses, more than the {} allowed", list->size(),
                    kMaxPodIps);
    }
    for (std::size_t i = 0; i < list->size(); ++i) {
      auto ip = ip_of_entry((*list)[i], fmt::format("IPs[{}]", i));
      if (!ip) return std::move(ip).error();
      spec.ips.push_back(std::move(*ip));
    }
  }
  const PodSpecFieldNames names{.uid = "PodUID",
                                .name = "PodName",
                                .namespace_ = "PodNamespace",
                                .service_account = "ServiceAccount",
                                .netns = "Netns",
                                .ips = "IPs"};
  AMBIENT_TRY(validate_pod_spec(spec, names));
  return spec;
}

}  // namespace ambient::cni
