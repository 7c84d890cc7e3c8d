#pragma once
// PodStore: the node agent's record of the pods it enrolled, kept in memory and persisted as one JSON
// file so a restarted agent knows what to reconcile.
//
// File: {"version":1,"pods":[PodRecord, ...]} (cni/api/pod_json.h), pods sorted by uid.
//
// Invariants:
//  - The file always holds a complete, valid document: every change writes "<path>.tmp" in the same
//    directory, fsyncs it, renames it over <path> and fsyncs the directory. A crash leaves either the
//    old or the new file (and perhaps a stale .tmp, which the next write replaces).
//  - Memory and file agree: a change whose write fails is undone in memory and returned as an error.
//  - At most max_pods records (4096, a node's pods with a wide margin: Kubernetes defaults to 110) and
//    a file of at most max_file_bytes (16 MiB; a record is at most ~1.5 KiB, so 4096 take ~6 MiB).
//
// Not thread-safe: one owner (the agent's control executor) calls everything. Writes are synchronous
// (a few ms with fsync); changes are rare (pod starts and stops).
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cni/api/paths.h"
#include "cni/api/pod.h"
#include "common/base/result.h"

namespace ambient::cni {

struct PodStoreOptions {
  std::string path = std::string(kDefaultPodStorePath);
  std::size_t max_pods = 4096;
  std::size_t max_file_bytes = 16 * 1024 * 1024;
};

class PodStore {
 public:
  explicit PodStore(PodStoreOptions options = {});

  // Replaces the memory with the file's content. A missing file is an empty store. An unreadable,
  // oversized or corrupt file is an error naming the file and the JSON position or field, e.g.
  // "pod store /var/run/ambient-cni/pods.json: pods[2].spec.uid: missing"; the memory is then left
  // empty so the caller decides (refuse to start, or move the file away and start clean).
  Result<void> load();

  // Inserts or replaces the record of record.spec.uid and writes the file. InvalidArgument when the
  // spec does not validate, ResourceExhausted at max_pods (new uid) or max_file_bytes, Io when the
  // write fails (memory unchanged then).
  Result<void> upsert(PodRecord record);

  // Removes the record of `uid` and writes the file. Returns false (and writes nothing) when absent.
  Result<bool> remove(std::string_view uid);

  // nullptr when absent. Valid until the next change.
  const PodRecord* get(std::string_view uid) const;
  // Every record, by uid.
  std::vector<PodRecord> all() const;
  std::size_t size() const noexcept { return records_.size(); }

  // The file's document ({"version":1,"pods":[...]}), also what GET /pods can serve.
  std::string to_json() const;

  const std::string& path() const noexcept { return options_.path; }

 private:
  Result<void> write_file() const;

  PodStoreOptions options_;
  std::map<std::string, PodRecord, std::less<>> records_;  // uid -> record
};

}  // namespace ambient::cni
