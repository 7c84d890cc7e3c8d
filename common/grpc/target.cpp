#include "common/grpc/target.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace ambient::grpc {

Result<Target> parse_target(std::string_view address, std::string_view what) {
  std::string_view rest = address;
  if (rest.starts_with("https://")) rest.remove_prefix(8);
  else if (rest.find("://") != std::string_view::npos)
    return errorf(ErrorKind::InvalidArgument, "{} {:?}: only https:// is supported (istiod serves it over TLS)", what,
                  address);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string_view host, port;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return errorf(ErrorKind::InvalidArgument, "{} {:?}: want [IPv6]:port", what, address);
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos)
      return errorf(ErrorKind::InvalidArgument, "{} {:?}: no port (want https://host:port)", what, address);
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  unsigned value = 0;
  const bool digits = !port.empty() && port.size() <= 5 &&
                      std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) value = static_cast<unsigned>(std::stoul(std::string(port)));
  if (host.empty() || !digits || value == 0 || value > 65535)
    return errorf(ErrorKind::InvalidArgument, "{} {:?}: want https://host:port with a port in 1..65535", what, address);
  return Target{std::string(host), static_cast<std::uint16_t>(value)};
}

Result<h2::Headers> control_plane_metadata(const std::string& token_path, const std::string& cluster_id,
                                           const h2::Headers& extra) {
  h2::Headers md;
  if (!token_path.empty()) {
    std::ifstream in(token_path);
    if (!in) return errorf(ErrorKind::NotFound, "AUTH_TOKEN file {}: cannot be read", token_path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string token = ss.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.empty()) return errorf(ErrorKind::InvalidArgument, "AUTH_TOKEN file {} is empty", token_path);
    md.push_back({"authorization", "Bearer " + token});
  }
  if (!cluster_id.empty()) md.push_back({"clusterid", cluster_id});
  for (const auto& h : extra) md.push_back(h);
  return md;
}

}  // namespace ambient::grpc
