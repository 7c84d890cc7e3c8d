#pragma once
// The few fields of a Kubernetes object's metadata the client and the informer read, and what they strip.
// Objects stay boost::json documents (the agent reads spec/status fields itself); this file only knows
// metadata.{namespace,name,uid,resourceVersion} and metadata.managedFields.
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "common/base/result.h"

namespace ambient::cni::kube {

struct ObjectMeta {
  std::string namespace_;        // "" for cluster-scoped objects (Namespace, Node)
  std::string name;              // non-empty
  std::string uid;               // non-empty
  std::string resource_version;  // opaque; "" when absent
};

// metadata.name and metadata.uid must be non-empty strings; namespace and resourceVersion strings when
// present; name and namespace without '/' (Kubernetes refuses it; object_key relies on it).
// InvalidArgument "<what>: metadata.uid: missing" otherwise.
Result<ObjectMeta> read_object_meta(const boost::json::object& object, std::string_view what);

// metadata.resourceVersion, "" when absent or not a string.
std::string_view resource_version_of(const boost::json::object& object);

// Removes metadata.managedFields (server-side-apply bookkeeping: often larger than the rest of a pod, and
// never read by the agent). No-op when absent.
void drop_managed_fields(boost::json::object& object);

// The cache key of an object: "namespace/name", or "name" for a cluster-scoped object ("" namespace).
std::string object_key(std::string_view namespace_, std::string_view name);

}  // namespace ambient::cni::kube
