#pragma once
// Informer: client-go's reflector + store for one collection (pods of this node, all namespaces, ...).
//
//   list (paged) --> cache.replace --> on_delete / on_upsert for the diff, then on_synced
//     `-> watch from the list's resourceVersion (allowWatchBookmarks, timeoutSeconds jittered in [min, max])
//           event ADDED/MODIFIED  --> cache.upsert --> on_upsert (only when the resourceVersion or uid changed)
//           event DELETED         --> cache.erase  --> on_delete (only when it was cached)
//           event BOOKMARK        --> resourceVersion only
//         stream ends normally     --> watch again from the last resourceVersion seen (no relist)
//         410 Gone (status/ERROR)  --> relist at once; the diff delivers what changed meanwhile, objects that
//                                      vanished get on_delete exactly once
//         any other failure        --> warn with the reason, wait (Backoff: 200 ms doubling to 30 s, jittered,
//                                      reset after a watch that delivered events), watch again from the last
//                                      resourceVersion; a failed list is retried the same way
//
// Invariants:
//  - the cache is never dropped on errors: a known object disappears only through a DELETED event or a
//    successful relist that lacks it;
//  - handlers see each object change once: a resumed watch that replays a resourceVersion already cached
//    calls nothing; a namesake with another uid is a delete of the old object, then an upsert of the new;
//  - a malformed event line (bad JSON, unknown type, no metadata.name/uid) is never applied: it counts in
//    stats().malformed_events and the watch restarts (after backoff) from the last good resourceVersion;
//  - cached objects have no metadata.managedFields.
//
// Handlers must not throw. They may call get()/stats() and stop() (the rest of a diff is then not delivered);
// the object they receive is valid during the call only.
//
// Threads and lifetime: everything (constructor, start, stop, get, synced, stats, the handlers) runs on the
// informer's executor, which must be single-threaded (an io_context run by one thread). stop() cancels the
// list/watch in flight; after it returns no handler is called, and the coroutine ends soon after (it keeps
// its own state alive, so the Informer may be destroyed right after stop(); the destructor stops).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/object.hpp>

#include "cni/kube/api_client.h"
#include "cni/kube/backoff.h"

namespace ambient::cni::kube {

struct InformerOptions {
  std::string name;   // for logs: "pods", "namespaces"
  std::string path;   // the collection: "/api/v1/pods", "/api/v1/namespaces"
  std::string query;  // selectors, already escaped ("fieldSelector=spec.nodeName%3Dnode-1"); may be empty
  // timeoutSeconds asked of each watch: uniform in [min, max] so the watches of many agents do not end
  // together (client-go: 5..10 min).
  std::chrono::seconds min_watch_timeout{300};
  std::chrono::seconds max_watch_timeout{600};
  BackoffPolicy backoff;  // after failures
  // A watch that ends normally sooner than this without any event is treated as a failure for pacing
  // (backoff before the next one), so a server that closes every watch at once is not hammered.
  std::chrono::milliseconds min_healthy_watch{1'000};
};

struct InformerStats {
  std::uint64_t lists = 0;             // complete lists applied
  std::uint64_t watches = 0;           // watch requests started
  std::uint64_t relists_on_gone = 0;   // 410 Gone answers (each followed by a relist)
  std::uint64_t errors = 0;            // failed lists and watches (malformed events included), 410 excluded
  std::uint64_t malformed_events = 0;  // watch lines refused
  std::uint64_t events = 0;            // watch events applied (bookmarks included)
  std::uint64_t upserts = 0;           // on_upsert calls
  std::uint64_t deletes = 0;           // on_delete calls
  std::string last_error;              // the last failure's message ("" before any)
};

class Informer {
 public:
  struct Handler {                                              // all called on the informer's executor
    std::function<void(const boost::json::object&)> on_upsert;  // added, or changed (resourceVersion differs)
    std::function<void(const boost::json::object&)> on_delete;  // deleted (watch event, or absent from a relist)
    std::function<void()> on_synced;                            // after each complete list was applied
  };

  // `client` is copied (a handle sharing its connection). Empty handler functions are skipped.
  Informer(boost::asio::any_io_executor executor, ApiClient& client, InformerOptions options, Handler handler);
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Begins list + watch. Once; a second call does nothing.
  void start();
  // Idempotent. No handler call after it returns.
  void stop();

  // Cache lookup ("" namespace for cluster-scoped objects); valid until the next change (executor turn).
  const boost::json::object* get(std::string_view namespace_, std::string_view name) const;
  std::size_t size() const;
  // A complete list has been applied (stays true across later relists and errors).
  bool synced() const;
  // The resourceVersion the next watch starts from ("" before the first list).
  const std::string& resource_version() const;
  InformerStats stats() const;

  struct Core;  // the state the coroutine shares (informer.cpp)

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace ambient::cni::kube
