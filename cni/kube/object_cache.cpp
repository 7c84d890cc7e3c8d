#include "cni/kube/object_cache.h"

#include <set>

#include "cni/kube/object_meta.h"

namespace ambient::cni::kube {

namespace json = boost::json;

namespace {

std::string_view uid_of(const json::object& object) {
  const json::value* metadata = object.if_contains("metadata");
  if (metadata == nullptr || !metadata->is_object()) return {};
  const json::value* uid = metadata->as_object().if_contains("uid");
  if (uid == nullptr || !uid->is_string()) return {};
  return std::string_view(uid->as_string().data(), uid->as_string().size());
}

}  // namespace

Result<ObjectCache::Upserted> ObjectCache::upsert(json::object object) {
  auto meta = read_object_meta(object, "object");
  if (!meta) return std::move(meta).error();
  drop_managed_fields(object);
  std::string key = object_key(meta->namespace_, meta->name);
  Upserted out;
  auto it = objects_.find(key);
  if (it == objects_.end()) {
    it = objects_.emplace(std::move(key), std::move(object)).first;
    out.changed = true;
  } else if (uid_of(it->second) != meta->uid) {
    out.replaced = std::move(it->second);
    it->second = std::move(object);
    out.changed = true;
  } else if (resource_version_of(it->second) != meta->resource_version || meta->resource_version.empty()) {
    it->second = std::move(object);
    out.changed = true;
  }
  out.object = &it->second;
  return out;
}

std::optional<json::object> ObjectCache::erase(std::string_view namespace_, std::string_view name) {
  auto it = objects_.find(object_key(namespace_, name));
  if (it == objects_.end()) return std::nullopt;
  json::object gone = std::move(it->second);
  objects_.erase(it);
  return gone;
}

ObjectCache::Diff ObjectCache::replace(std::vector<json::object> items) {
  Diff diff;
  std::set<std::string, std::less<>> listed;
  for (auto& item : items) {
    auto meta = read_object_meta(item, "object");
    if (!meta) {
      ++diff.invalid;
      continue;
    }
    std::string key = object_key(meta->namespace_, meta->name);
    if (!listed.insert(key).second) continue;  // a list never repeats a key; keep the first if one does
    auto up = upsert(std::move(item));
    if (!up) continue;  // checked above
    if (up->replaced) diff.deleted.push_back(std::move(*up->replaced));
    if (up->changed) diff.upserted.push_back(std::move(key));
  }
  for (auto it = objects_.begin(); it != objects_.end();) {
    if (listed.count(it->first) == 0) {
      diff.deleted.push_back(std::move(it->second));
      it = objects_.erase(it);
    } else {
      ++it;
    }
  }
  return diff;
}

const json::object* ObjectCache::find(std::string_view namespace_, std::string_view name) const {
  return find_key(object_key(namespace_, name));
}

const json::object* ObjectCache::find_key(const std::string& key) const {
  auto it = objects_.find(key);
  return it == objects_.end() ? nullptr : &it->second;
}

}  // namespace ambient::cni::kube
