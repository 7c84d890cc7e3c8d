#pragma once
// HTTP/2 header fields as received or to be sent. Pseudo-headers (":status", ":authority") included.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ambient::h2 {

struct Header {
  std::string name;   // lower-case on the wire (HTTP/2 requires it)
  std::string value;
};
using Headers = std::vector<Header>;

inline std::optional<std::string_view> find_header(const Headers& hs, std::string_view name) {
  for (const auto& h : hs)
    if (h.name == name) return std::string_view(h.value);
  return std::nullopt;
}

}  // namespace ambient::h2
