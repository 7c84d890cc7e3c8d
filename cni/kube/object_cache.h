#pragma once
// ObjectCache: the informer's store, one collection's objects by "namespace/name" (client-go's
// cache.Store + the diff of DeltaFIFO.Replace). Pure: no I/O, no handlers; it says what changed and the
// informer calls its handlers with that.
//
// Invariants:
//  - every cached object has metadata.name and metadata.uid (read_object_meta) and no managedFields;
//  - one object per key; an object whose uid differs from the cached one under the same key is a new object
//    (the old one was deleted and a namesake created, maybe while the watch was down): upsert reports the old
//    one as replaced so the informer can deliver its deletion first;
//  - an upsert whose resourceVersion equals the cached one (same uid) changes nothing: a resumed watch or a
//    relist that replays what we have produces no handler call.
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "common/base/result.h"

namespace ambient::cni::kube {

class ObjectCache {
 public:
  struct Upserted {
    bool changed = false;                        // added, or a different resourceVersion/uid than cached
    std::optional<boost::json::object> replaced;  // the cached object with another uid, now gone
    const boost::json::object* object = nullptr;  // the cached object (valid until the next change)
  };
  // InvalidArgument when `object` lacks metadata.name/uid (nothing is changed then).
  Result<Upserted> upsert(boost::json::object object);

  // The cached object removed (nullopt when it was not cached).
  std::optional<boost::json::object> erase(std::string_view namespace_, std::string_view name);

  struct Diff {
    std::vector<boost::json::object> deleted;  // cached objects absent from the new list (or replaced by a new uid)
    std::vector<std::string> upserted;         // keys of added or changed objects, in list order
    std::size_t invalid = 0;                   // items without metadata.name/uid (skipped)
  };
  // Replaces the whole content with `items` (a complete list) and says what changed.
  Diff replace(std::vector<boost::json::object> items);

  const boost::json::object* find(std::string_view namespace_, std::string_view name) const;
  const boost::json::object* find_key(const std::string& key) const;
  std::size_t size() const noexcept { return objects_.size(); }

 private:
  std::map<std::string, boost::json::object, std::less<>> objects_;
};

}  // namespace ambient::cni::kube
