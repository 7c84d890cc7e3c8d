// fuzz_kube_watch_event: a Kubernetes watch stream's body as the node agent's informer reads it (cni/kube):
// the bytes arrive in pieces, LineSplitter (bounded) cuts them into lines, parse_watch_event parses each
// line, and accepted object events are applied to an ObjectCache the way the informer applies them.
//
// Input: byte 0 picks the piece size (1..64 bytes, so events split across chunks and sharing one are both
// exercised); the rest is the body.
//
// Invariants:
//  - errors are InvalidArgument (one line) or ResourceExhausted (a line over the limit), with a context that
//    is valid UTF-8; after ResourceExhausted the splitter stays failed;
//  - the splitter never holds more than its limit;
//  - an accepted event's object is an object; ADDED/MODIFIED/DELETED carry non-empty metadata.name and uid
//    and no managedFields; BOOKMARK carries a resourceVersion;
//  - round trip: format_watch_event(event) parses back to the same type and object;
//  - the cache accepts every object event parse_watch_event accepted, finds it after an upsert and not after
//    a delete, and its size never exceeds the number of upserts.
#include <cstdint>
#include <string>

#include "cni/kube/line_splitter.h"
#include "cni/kube/object_cache.h"
#include "cni/kube/object_meta.h"
#include "cni/kube/watch_event.h"
#include "test/fuzz/fuzz_support.h"

namespace {

using namespace ambient;
using namespace ambient::cni::kube;

// Small, so the over-limit branch is reachable within max_len.
constexpr std::size_t kMaxLine = 4096;

void check_event(const WatchEvent& event, ObjectCache& cache, std::size_t& upserts) {
  FUZZ_CHECK(event.object.is_object(), "accepted an event whose object is not an object");
  const auto& object = event.object.as_object();
  switch (event.type) {
    case WatchEvent::Type::Added:
    case WatchEvent::Type::Modified:
    case WatchEvent::Type::Deleted: {
      auto meta = read_object_meta(object, "object");
      FUZZ_CHECK(meta.has_value(), "accepted an object event without name/uid: {}", meta.error().context);
      FUZZ_CHECK(!meta->name.empty() && !meta->uid.empty(), "empty name or uid accepted");
      const auto* metadata = object.at("metadata").if_object();
      FUZZ_CHECK(metadata != nullptr && metadata->if_contains("managedFields") == nullptr, "managedFields kept");
      if (event.type == WatchEvent::Type::Deleted) {
        cache.erase(meta->namespace_, meta->name);
        FUZZ_CHECK(cache.find(meta->namespace_, meta->name) == nullptr, "found after erase");
      } else {
        auto up = cache.upsert(object);
        FUZZ_CHECK(up.has_value(), "the cache refused an accepted object: {}", up.error().context);
        ++upserts;
        FUZZ_CHECK(cache.find(meta->namespace_, meta->name) != nullptr, "not found after upsert");
      }
      FUZZ_CHECK(cache.size() <= upserts, "cache larger than the upserts");
      break;
    }
    case WatchEvent::Type::Bookmark:
      FUZZ_CHECK(!resource_version_of(object).empty(), "bookmark without resourceVersion");
      break;
    case WatchEvent::Type::Error:
      (void)status_code(event.object);
      (void)status_text(event.object);
      break;
  }
  auto again = parse_watch_event(format_watch_event(event));
  FUZZ_CHECK(again.has_value(), "formatted event does not parse: {}", again.error().context);
  FUZZ_CHECK(again->type == event.type, "round trip changed the type");
  FUZZ_CHECK(again->object == event.object, "round trip changed the object");
}

std::string line(std::string_view type, std::string_view object) {
  return fmt::format(R"({{"type":"{}","object":{}}})", type, object) + "\n";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string pod =
      R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-0","namespace":"shop","uid":"u-1",)"
      R"("resourceVersion":"1042","annotations":{"ambient.istio.io/redirection":"enabled"},)"
      R"("managedFields":[{"manager":"kubelet","fieldsV1":{"f:status":{"f:podIP":{}}}}]},)"
      R"("spec":{"nodeName":"n1","containers":[{"name":"app"}]},"status":{"podIP":"10.0.0.7"}})";
  const std::string ns = R"({"kind":"Namespace","metadata":{"name":"shop","uid":"u-ns","resourceVersion":"7",)"
                         R"("labels":{"istio.io/dataplane-mode":"ambient"}}})";
  const std::string stream = line("ADDED", pod) + line("MODIFIED", pod) +
                             line("BOOKMARK", R"({"kind":"Pod","metadata":{"resourceVersion":"1050"}})") +
                             line("DELETED", pod);
  fuzz::write_seeds_if_asked({
      {"added_pod", std::string(1, '\x07') + line("ADDED", pod)},
      {"stream", std::string(1, '\x10') + stream},
      {"stream_one_piece", std::string(1, '\x3f') + stream},
      {"namespace", std::string(1, '\x05') + line("MODIFIED", ns)},
      {"error_410", std::string(1, '\x09') +
                        line("ERROR", R"({"kind":"Status","apiVersion":"v1","status":"Failure",)"
                                      R"json("message":"too old resource version: 5 (12)","reason":"Expired","code":410})json")},
      {"malformed_then_good", std::string(1, '\x03') + "{not json\n" + line("ADDED", pod)},
      {"crlf_blank_lines", std::string(1, '\x01') + "\r\n\n" + line("ADDED", ns) + "\r\n"},
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + (data[0] % 64);
  std::string_view body = fuzz::as_text(data + 1, size - 1);
  LineSplitter splitter(kMaxLine);
  ObjectCache cache;
  std::size_t upserts = 0;
  const LineSplitter::OnLine on_line = [&](std::string_view text) -> Result<void> {
    FUZZ_CHECK(text.size() <= kMaxLine, "line of {} bytes over the limit", text.size());
    auto event = parse_watch_event(text);
    if (!event) {
      fuzz::check_error(event.error(), {ErrorKind::InvalidArgument});
      FUZZ_CHECK(fuzz::is_valid_utf8(event.error().context), "error context is not UTF-8: {}", event.error().context);
      return ok();  // the informer restarts the watch; here: go on with the next line
    }
    check_event(*event, cache, upserts);
    return ok();
  };
  bool failed = false;
  while (!body.empty()) {
    const auto part = body.substr(0, piece);
    body.remove_prefix(part.size());
    auto fed = splitter.feed(part, on_line);
    FUZZ_CHECK(splitter.buffered() <= kMaxLine, "splitter holds {} bytes", splitter.buffered());
    if (!fed) {
      fuzz::check_error(fed.error(), {ErrorKind::ResourceExhausted});
      failed = true;
      break;
    }
  }
  auto finished = splitter.finish(on_line);
  if (failed) {
    FUZZ_CHECK(!finished.has_value(), "the splitter recovered after an over-limit line");
  } else {
    FUZZ_CHECK(finished.has_value(), "finish failed: {}", finished.error().context);
  }
  return 0;
}
