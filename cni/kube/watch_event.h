#pragma once
// One event of a Kubernetes watch stream (?watch=1, JSON): one JSON object per line,
//   {"type":"ADDED","object":{...}}
// with type ADDED, MODIFIED, DELETED, BOOKMARK or ERROR. Pure (no I/O), fuzzed (test/fuzz/fuzz_kube_watch_event).
//
// Accepted shapes (anything else is InvalidArgument with the reason, the line is skipped by the informer):
//   ADDED/MODIFIED/DELETED  object with metadata.name and metadata.uid (non-empty strings); metadata.managedFields
//                           is dropped here, so no cache ever holds it.
//   BOOKMARK                object with metadata.resourceVersion (a string; the only field that matters).
//   ERROR                   object is a meta/v1 Status ({"kind":"Status","code":410,"reason":"Expired",...});
//                           status_code() reads its code (410 Gone: the resourceVersion is too old, relist).
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "common/base/result.h"

namespace ambient::cni::kube {

struct WatchEvent {
  enum class Type : std::uint8_t {
    Added,     // a new object (or one the watch's start resourceVersion had not seen)
    Modified,  // a change of an object
    Deleted,   // the object's last state
    Bookmark,  // no change: only metadata.resourceVersion, to resume a watch from (allowWatchBookmarks)
    Error,     // the server ends the watch: object is a Status (code 410 = resourceVersion too old)
  };
  Type type = Type::Added;
  boost::json::value object;  // always an object
};

std::string_view to_string(WatchEvent::Type type) noexcept;

// Parses one line (without its '\n'; a trailing '\r' is tolerated). Malformed -> InvalidArgument naming
// what is wrong ("watch event: type 'PATCHED' is not one of ADDED, MODIFIED, ...").
Result<WatchEvent> parse_watch_event(std::string_view line);

// The line parse_watch_event reads back (no trailing newline): how the fake API server writes events, and
// the fuzzer's round trip.
std::string format_watch_event(const WatchEvent& event);

// The HTTP-like code of a Status object (its "code" field), 0 when absent or not an integer.
int status_code(const boost::json::value& status);
// "reason: message" of a Status object, for errors ("Expired: too old resource version: 5 (12)").
std::string status_text(const boost::json::value& status);

}  // namespace ambient::cni::kube
