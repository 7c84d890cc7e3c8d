#include "cni/agent/kube_objects.h"

#include <algorithm>

#include <fmt/format.h>

#include "cni/api/json_fields.h"
#include "cni/api/pod.h"

namespace ambient::cni {

namespace {

namespace json = boost::json;

Error in_object(std::string_view kind, std::string_view ns, std::string_view name, const Error& e) {
  const std::string_view shown = name.empty() ? std::string_view("(unnamed)") : name;
  const std::string where = ns.empty() ? std::string(shown) : fmt::format("{}/{}", ns, shown);
  return errorf(e.kind, "{} {}: {}", kind, where, e.context);
}

// metadata.labels / metadata.annotations: a string-to-string map.
Result<Labels> string_map(const JsonObjectReader& parent, std::string_view key) {
  Labels out;
  const json::value* v = parent.find(key);
  if (v == nullptr) return out;
  auto map = JsonObjectReader::open(*v, parent.field_path(key));
  if (!map) return std::move(map).error();
  if (map->object().size() > kMaxLabels)
    return errorf(ErrorKind::ResourceExhausted, "{}: {} entries, at most {} are accepted", parent.field_path(key),
                  map->object().size(), kMaxLabels);
  for (const auto& [k, value] : map->object()) {
    auto text = map->required_string(k);
    if (!text) return std::move(text).error();
    out.emplace(std::string(k), std::move(*text));
  }
  return out;
}

Result<JsonObjectReader> sub(const JsonObjectReader& parent, std::string_view key) {
  static const json::value empty = json::object();  // the reader borrows it: it must outlive the reader
  const json::value* v = parent.find(key);
  if (v == nullptr) return JsonObjectReader::open(empty, parent.field_path(key));
  return JsonObjectReader::open(*v, parent.field_path(key));
}

// A metadata string that must be there and not be empty (name, namespace, uid).
Result<std::string> required_name(const JsonObjectReader& meta, std::string_view key) {
  auto v = meta.required_string(key);
  if (!v) return v;
  if (v->empty()) return errorf(ErrorKind::InvalidArgument, "{}: empty", meta.field_path(key));
  return v;
}

// The reader borrows the object: `metadata` must be a reference into the document, never a copy.
Result<JsonObjectReader> metadata_of(const JsonObjectReader& top) {
  static const json::value absent;  // null: "metadata: expected an object, got null"
  const json::value* v = top.find("metadata");
  return JsonObjectReader::open(v != nullptr ? *v : absent, "metadata");
}

}  // namespace

Result<KubePod> kube_pod_from_json(const json::object& object) {
  KubePod pod;
  const json::value root(object);
  auto parse = [&]() -> Result<void> {
    auto top = JsonObjectReader::open(root, "");
    if (!top) return std::move(top).error();
    auto meta = metadata_of(*top);
    if (!meta) return std::move(meta).error();
    auto ns = required_name(*meta, "namespace");
    if (!ns) return std::move(ns).error();
    pod.namespace_ = std::move(*ns);
    auto name = required_name(*meta, "name");
    if (!name) return std::move(name).error();
    pod.name = std::move(*name);
    auto uid = required_name(*meta, "uid");
    if (!uid) return std::move(uid).error();
    pod.uid = std::move(*uid);
    auto rv = meta->optional_string("resourceVersion");
    if (!rv) return std::move(rv).error();
    pod.resource_version = std::move(*rv);
    auto labels = string_map(*meta, "labels");
    if (!labels) return std::move(labels).error();
    pod.labels = std::move(*labels);
    auto annotations = string_map(*meta, "annotations");
    if (!annotations) return std::move(annotations).error();
    pod.annotations = std::move(*annotations);
    pod.terminating = meta->find("deletionTimestamp") != nullptr;

    auto spec = sub(*top, "spec");
    if (!spec) return std::move(spec).error();
    auto sa = spec->optional_string("serviceAccountName");
    if (!sa) return std::move(sa).error();
    pod.service_account = std::move(*sa);
    auto node = spec->optional_string("nodeName");
    if (!node) return std::move(node).error();
    pod.node_name = std::move(*node);
    auto host = spec->optional_bool("hostNetwork");
    if (!host) return std::move(host).error();
    pod.host_network = host->value_or(false);

    auto status = sub(*top, "status");
    if (!status) return std::move(status).error();
    auto phase = status->optional_string("phase");
    if (!phase) return std::move(phase).error();
    pod.phase = std::move(*phase);
    auto add_ip = [&](std::string_view text, const std::string& path) -> Result<void> {
      auto ip = canonical_ip(text);
      if (!ip) return errorf(ErrorKind::InvalidArgument, "{}: {}", path, ip.error().context);
      if (std::find(pod.ips.begin(), pod.ips.end(), *ip) != pod.ips.end()) return ok();
      if (pod.ips.size() == kMaxPodIps)
        return errorf(ErrorKind::InvalidArgument, "{}: more than {} pod IPs", path, kMaxPodIps);
      pod.ips.push_back(std::move(*ip));
      return ok();
    };
    auto ips = status->array("podIPs", false);
    if (!ips) return std::move(ips).error();
    if (*ips != nullptr) {
      for (std::size_t i = 0; i < (*ips)->size(); ++i) {
        auto entry = JsonObjectReader::open((**ips)[i], fmt::format("{}[{}]", status->field_path("podIPs"), i));
        if (!entry) return std::move(entry).error();
        auto ip = entry->required_string("ip");
        if (!ip) return std::move(ip).error();
        AMBIENT_TRY(add_ip(*ip, entry->field_path("ip")));
      }
    }
    if (pod.ips.empty()) {
      auto ip = status->optional_string("podIP");
      if (!ip) return std::move(ip).error();
      if (!ip->empty()) AMBIENT_TRY(add_ip(*ip, status->field_path("podIP")));
    }
    return ok();
  };
  if (auto r = parse(); !r) return in_object("pod", pod.namespace_, pod.name, r.error());
  return pod;
}

Result<KubeNamespace> kube_namespace_from_json(const json::object& object) {
  KubeNamespace ns;
  const json::value root(object);
  auto parse = [&]() -> Result<void> {
    auto top = JsonObjectReader::open(root, "");
    if (!top) return std::move(top).error();
    auto meta = metadata_of(*top);
    if (!meta) return std::move(meta).error();
    auto name = required_name(*meta, "name");
    if (!name) return std::move(name).error();
    ns.name = std::move(*name);
    auto labels = string_map(*meta, "labels");
    if (!labels) return std::move(labels).error();
    ns.labels = std::move(*labels);
    return ok();
  };
  if (auto r = parse(); !r) return in_object("namespace", "", ns.name, r.error());
  return ns;
}

}  // namespace ambient::cni
