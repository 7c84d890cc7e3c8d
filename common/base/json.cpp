#include "common/base/json.h"

#include <fmt/format.h>

namespace ambient::json {

void append_string(std::string& out, std::string_view v) {
  out += '"';
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        else out += ch;
    }
  }
  out += '"';
}

std::string quote(std::string_view v) {
  std::string out;
  out.reserve(v.size() + 2);
  append_string(out, v);
  return out;
}

}  // namespace ambient::json
