#include "cni/kube/watch_event.h"

#include <boost/json/serialize.hpp>

#include "cni/api/json_fields.h"
#include "cni/kube/object_meta.h"

namespace ambient::cni::kube {

namespace json = boost::json;

namespace {

constexpr std::string_view kWhat = "watch event";

Result<WatchEvent::Type> parse_type(std::string_view text) {
  if (text == "ADDED") return WatchEvent::Type::Added;
  if (text == "MODIFIED") return WatchEvent::Type::Modified;
  if (text == "DELETED") return WatchEvent::Type::Deleted;
  if (text == "BOOKMARK") return WatchEvent::Type::Bookmark;
  if (text == "ERROR") return WatchEvent::Type::Error;
  return errorf(ErrorKind::InvalidArgument, "{}: type '{}' is not one of ADDED, MODIFIED, DELETED, BOOKMARK, ERROR",
                kWhat, utf8_prefix(text, 40));
}

}  // namespace

std::string_view to_string(WatchEvent::Type type) noexcept {
  switch (type) {
    case WatchEvent::Type::Added: return "ADDED";
    case WatchEvent::Type::Modified: return "MODIFIED";
    case WatchEvent::Type::Deleted: return "DELETED";
    case WatchEvent::Type::Bookmark: return "BOOKMARK";
    case WatchEvent::Type::Error: return "ERROR";
  }
  return "UNKNOWN";
}

Result<WatchEvent> parse_watch_event(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.find_first_not_of(" \t") == std::string_view::npos) {
    return errorf(ErrorKind::InvalidArgument, "{}: empty line", kWhat);
  }
  auto doc = parse_json(line, kWhat);
  if (!doc) return make_error(ErrorKind::InvalidArgument, std::move(doc).error().context);
  auto reader = JsonObjectReader::open(*doc, std::string(kWhat));
  if (!reader) return std::move(reader).error();
  auto type_text = reader->required_string("type");
  if (!type_text) return std::move(type_text).error();
  auto type = parse_type(*type_text);
  if (!type) return std::move(type).error();
  json::value* object = doc->as_object().if_contains("object");
  if (object == nullptr || object->is_null()) {
    return errorf(ErrorKind::InvalidArgument, "{} {}: object: missing", kWhat, *type_text);
  }
  if (!object->is_object()) {
    return errorf(ErrorKind::InvalidArgument, "{} {}: object: expected an object, got {}", kWhat, *type_text,
                  describe_json(*object));
  }
  const std::string what = fmt::format("{} {}: object", kWhat, *type_text);
  switch (*type) {
    case WatchEvent::Type::Added:
    case WatchEvent::Type::Modified:
    case WatchEvent::Type::Deleted: {
      auto meta = read_object_meta(object->as_object(), what);
      if (!meta) return std::move(meta).error();
      drop_managed_fields(object->as_object());
      break;
    }
    case WatchEvent::Type::Bookmark:
      if (resource_version_of(object->as_object()).empty()) {
        return errorf(ErrorKind::InvalidArgument, "{}.metadata.resourceVersion: missing or not a non-empty string", what);
      }
      break;
    case WatchEvent::Type::Error:
      break;
  }
  WatchEvent event;
  event.type = *type;
  event.object = std::move(*object);
  return event;
}

std::string format_watch_event(const WatchEvent& event) {
  json::object line;
  line["type"] = to_string(event.type);
  line["object"] = event.object;
  return json::serialize(line);
}

int status_code(const json::value& status) {
  const json::object* o = status.if_object();
  if (o == nullptr) return 0;
  const json::value* code = o->if_contains("code");
  if (code == nullptr) return 0;
  if (const std::int64_t* i = code->if_int64(); i != nullptr && *i > 0 && *i < 1000) return static_cast<int>(*i);
  if (const std::uint64_t* u = code->if_uint64(); u != nullptr && *u < 1000) return static_cast<int>(*u);
  return 0;
}

std::string status_text(const json::value& status) {
  const json::object* o = status.if_object();
  if (o == nullptr) return describe_json(status);
  auto field = [o](std::string_view key) -> std::string_view {
    const json::value* v = o->if_contains(key);
    if (v == nullptr || !v->is_string()) return {};
    return std::string_view(v->as_string().data(), v->as_string().size());
  };
  const std::string_view reason = field("reason");
  const std::string_view message = utf8_prefix(field("message"), 512);
  if (reason.empty() && message.empty()) return describe_json(status);
  if (reason.empty()) return std::string(message);
  if (message.empty()) return std::string(utf8_prefix(reason, 64));
  return fmt::format("{}: {}", utf8_prefix(reason, 64), message);
}

}  // namespace ambient::cni::kube
