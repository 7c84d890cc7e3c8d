#include "cni/kube/object_meta.h"

#include "cni/api/json_fields.h"

namespace ambient::cni::kube {

namespace json = boost::json;

Result<ObjectMeta> read_object_meta(const json::object& object, std::string_view what) {
  const json::value* metadata = object.if_contains("metadata");
  if (metadata == nullptr || metadata->is_null()) return errorf(ErrorKind::InvalidArgument, "{}: metadata: missing", what);
  auto reader = JsonObjectReader::open(*metadata, fmt::format("{}: metadata", what));
  if (!reader) return std::move(reader).error();
  ObjectMeta meta;
  auto name = reader->required_string("name");
  if (!name) return std::move(name).error();
  auto uid = reader->required_string("uid");
  if (!uid) return std::move(uid).error();
  auto ns = reader->optional_string("namespace");
  if (!ns) return std::move(ns).error();
  auto rv = reader->optional_string("resourceVersion");
  if (!rv) return std::move(rv).error();
  if (name->empty()) return errorf(ErrorKind::InvalidArgument, "{}.name: empty", reader->path());
  if (uid->empty()) return errorf(ErrorKind::InvalidArgument, "{}.uid: empty", reader->path());
  // Kubernetes names never hold '/': refusing it keeps "namespace/name" keys unambiguous.
  if (name->find('/') != std::string::npos) return errorf(ErrorKind::InvalidArgument, "{}.name: holds '/'", reader->path());
  if (ns->find('/') != std::string::npos) {
    return errorf(ErrorKind::InvalidArgument, "{}.namespace: holds '/'", reader->path());
  }
  meta.name = std::move(*name);
  meta.uid = std::move(*uid);
  meta.namespace_ = std::move(*ns);
  meta.resource_version = std::move(*rv);
  return meta;
}

std::string_view resource_version_of(const json::object& object) {
  const json::value* metadata = object.if_contains("metadata");
  if (metadata == nullptr || !metadata->is_object()) return {};
  const json::value* rv = metadata->as_object().if_contains("resourceVersion");
  if (rv == nullptr || !rv->is_string()) return {};
  return std::string_view(rv->as_string().data(), rv->as_string().size());
}

void drop_managed_fields(json::object& object) {
  json::value* metadata = object.if_contains("metadata");
  if (metadata != nullptr && metadata->is_object()) metadata->as_object().erase("managedFields");
}

std::string object_key(std::string_view namespace_, std::string_view name) {
  if (namespace_.empty()) return std::string(name);
  std::string key;
  key.reserve(namespace_.size() + 1 + name.size());
  key.append(namespace_).append("/").append(name);
  return key;
}

}  // namespace ambient::cni::kube
