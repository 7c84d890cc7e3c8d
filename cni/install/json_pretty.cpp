#include "cni/install/json_pretty.h"

#include <cmath>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace ambient::cni::install {

namespace json = boost::json;

namespace {

void indent(std::string& out, int depth) { out.append(static_cast<std::size_t>(depth) * 2, ' '); }

void append_double(std::string& out, double d) {
  if (std::isinf(d)) {
    out += d > 0 ? "1e999" : "-1e999";
    return;
  }
  // Only Boost.JSON's own parser makes NaN (of "0e999", zero with a huge exponent): the number is zero.
  if (std::isnan(d)) {
    out += "0.0";
    return;
  }
  std::string text = fmt::format("{}", d);  // shortest round-trip form: "1.5", "1e+20", "1"
  if (text.find_first_of(".eE") == std::string::npos) text += ".0";
  out += text;
}

// Recursion depth is bounded by the parser's (parse_json refuses nesting deeper than 32).
void append_value(std::string& out, const json::value& v, int depth) {
  switch (v.kind()) {
    case json::kind::object: {
      const json::object& o = v.get_object();
      if (o.empty()) {
        out += "{}";
        return;
      }
      out += "{\n";
      bool first = true;
      for (const auto& member : o) {
        if (!first) out += ",\n";
        first = false;
        indent(out, depth + 1);
        out += json::serialize(member.key());
        out += ": ";
        append_value(out, member.value(), depth + 1);
      }
      out += '\n';
      indent(out, depth);
      out += '}';
      return;
    }
    case json::kind::array: {
      const json::array& a = v.get_array();
      if (a.empty()) {
        out += "[]";
        return;
      }
      out += "[\n";
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (i > 0) out += ",\n";
        indent(out, depth + 1);
        append_value(out, a[i], depth + 1);
      }
      out += '\n';
      indent(out, depth);
      out += ']';
      return;
    }
    case json::kind::double_:
      append_double(out, v.get_double());
      return;
    default:  // null, bool, int64, uint64, string: Boost.JSON's own text (strings escaped, UTF-8 kept)
      out += json::serialize(v);
      return;
  }
}

}  // namespace

std::string pretty_json(const json::value& v) {
  std::string out;
  append_value(out, v, 0);
  out += '\n';
  return out;
}

}  // namespace ambient::cni::install
