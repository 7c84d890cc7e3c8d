#pragma once
// JSON string quoting (RFC 8259, serde_json's escapes), shared by every hand-written JSON output
// (config_dump, access log, admin).
#include <string>
#include <string_view>

namespace ambient::json {

// Appends `v` as a quoted JSON string.
void append_string(std::string& out, std::string_view v);
// `v` as a quoted JSON string.
std::string quote(std::string_view v);

}  // namespace ambient::json
