#pragma once
// The resources fake-istiod serves, read from a directory of local-config YAML files (common/state/
// local_config.h shape; the union of every *.yaml file is the state).
//
// Each resource is kept serialised (deterministic protobuf serialisation) with its name and version:
//   Address        name = workload uid, or "namespace/hostname" for a service (common/state/resource.h)
//   Authorization  name = "namespace/name"
//   version        FNV-1a 64 of the serialised message, 16 hex digits: equal bytes, equal version, so a
//                  client's initial_resource_versions from a previous stream (or a restart) still match.
//
// Reload: poll() compares the directory's fingerprint (file names, mtime in ns, size) with the last one
// and re-reads every file when it changed. All or nothing: when a file fails to parse (or two files name
// the same resource), the error is returned and the previous state stays current.
//
// Threads: one thread calls load()/poll(); current() may be called from any thread.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace fake_istiod {

inline constexpr std::string_view kAddressType = "type.googleapis.com/istio.workload.Address";
inline constexpr std::string_view kAuthorizationType = "type.googleapis.com/istio.security.Authorization";

struct Resource {
  std::string version;  // hex hash of `bytes`
  std::string bytes;    // the serialised istio.workload.Address / istio.security.Authorization
};
using ResourceMap = std::map<std::string, Resource, std::less<>>;  // name -> resource

struct Resources {
  std::uint64_t generation = 0;  // 1 for the first good load, +1 per reload that changed something
  ResourceMap addresses;
  ResourceMap authorizations;

  // The map for `type_url`; nullptr for other types.
  const ResourceMap* of_type(std::string_view type_url) const;
};

// The version string of serialised bytes.
std::string resource_version(std::string_view bytes);

class ConfigStore {
 public:
  // `dir` empty: no config (an empty state that never changes).
  explicit ConfigStore(std::string dir);

  // Reads the directory now (start-up). An error leaves the state empty.
  ambient::Result<void> load();
  // Reloads when the directory changed since the last look. true: a new state is current; false: no
  // change (or an unchanged reload). An error (parse failure) keeps the previous state and is reported
  // once per change of the directory.
  ambient::Result<bool> poll();

  std::shared_ptr<const Resources> current() const;

 private:
  ambient::Result<std::string> fingerprint() const;
  ambient::Result<Resources> read_all() const;

  std::string dir_;
  std::optional<std::string> last_fingerprint_;  // nullopt before the first look
  mutable std::mutex mu_;
  std::shared_ptr<const Resources> current_;
};

}  // namespace fake_istiod
