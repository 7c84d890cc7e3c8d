#include "common/net/endpoint.h"

#include <charconv>

namespace ambient::net {

namespace asio = boost::asio;

std::string format_endpoint(const asio::ip::tcp::endpoint& ep) {
  asio::ip::address ip = ep.address();
  if (ip.is_v6() && ip.to_v6().is_v4_mapped()) ip = asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
  if (ip.is_v6()) return fmt::format("[{}]:{}", ip.to_string(), ep.port());
  return fmt::format("{}:{}", ip.to_string(), ep.port());
}

Result<asio::ip::tcp::endpoint> parse_endpoint(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return errorf(ErrorKind::InvalidArgument, "'{}' is not HOST:PORT", text);
  std::string_view host = text.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(std::string(host), ec);
  if (ec) return errorf(ErrorKind::InvalidArgument, "'{}': '{}' is not an IP address", text, host);
  const std::string_view port = text.substr(colon + 1);
  unsigned value = 0;
  auto [p, err] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (err != std::errc() || p != port.data() + port.size() || port.empty() || value > 65535)
    return errorf(ErrorKind::InvalidArgument, "'{}': port '{}' is not 0..65535", text, port);
  return asio::ip::tcp::endpoint(addr, static_cast<std::uint16_t>(value));
}

}  // namespace ambient::net
