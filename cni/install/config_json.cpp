#include "cni/install/config_json.h"

#include <locale.h>
#include <stdlib.h>

#include <algorithm>
#include <string>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/value_stack.hpp>
#include <fmt/format.h>

namespace ambient::cni::install {

namespace json = boost::json;

namespace {

// strtod in the "C" locale whatever the process's locale ('.' as the decimal point).
double c_strtod(const std::string& text) {
  static const locale_t c_locale = ::newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(nullptr));
  return ::strtod_l(text.c_str(), nullptr, c_locale);
}

// Builds the value as Boost.JSON's own parser does (a value_stack), but converts non-integer numbers itself.
struct Handler {
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();

  json::value_stack st;
  std::string number;  // the current number's text, which may arrive in parts

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    st.push_array(n);
    return true;
  }
  bool on_object_begin(json::error_code&) { return true; }
  bool on_object_end(std::size_t n, json::error_code&) {
    st.push_object(n);
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    st.push_string(s);
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    st.push_key(s);
    return true;
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    number.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    number.clear();
    st.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    number.clear();
    st.push_uint64(u);
    return true;
  }
  bool on_double(double, json::string_view s, json::error_code&) {
    number.append(s.data(), s.size());
    st.push_double(c_strtod(number));  // JSON's number grammar is a subset of strtod's
    number.clear();
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    st.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    st.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }
};

Error syntax_error(std::string_view text, std::string_view what, std::size_t offset, std::string_view reason) {
  offset = std::min(offset, text.size());
  const std::string_view before = text.substr(0, offset);
  const std::size_t line = 1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
  const std::size_t last_newline = before.rfind('\n');
  const std::size_t column = last_newline == std::string_view::npos ? offset + 1 : offset - last_newline;
  return errorf(ErrorKind::Parse, "{}: JSON syntax error at line {} column {} (byte {}): {}", what, line, column,
                offset, reason);
}

}  // namespace

Result<json::value> parse_config_json(std::string_view text, std::string_view what) {
  json::basic_parser<Handler> parser(json::parse_options{});  // max_depth 32, strict JSON
  parser.handler().st.reset();  // value_stack: required before the first push
  json::error_code ec;
  const std::size_t consumed = parser.write_some(false, text.data(), text.size(), ec);
  if (ec) return syntax_error(text, what, consumed, ec.message());
  const std::string_view rest = text.substr(consumed);
  if (const auto garbage = rest.find_first_not_of(" \t\r\n"); garbage != std::string_view::npos) {
    return syntax_error(text, what, consumed + garbage, "unexpected characters after the JSON value");
  }
  if (!parser.done()) return syntax_error(text, what, text.size(), "incomplete JSON");
  return parser.handler().st.release();
}

}  // namespace ambient::cni::install
