#pragma once
// Text forms of TCP endpoints, one spelling for logs, errors, headers and flags:
// "10.0.0.1:80", "[fd00::1]:80". An IPv4-mapped IPv6 address (a dual-stack socket's IPv4 peer) prints
// as IPv4.
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"

namespace ambient::net {

std::string format_endpoint(const boost::asio::ip::tcp::endpoint& ep);
// "ip:port" or "[v6]:port" with an IP literal (no hostnames); port 0..65535.
Result<boost::asio::ip::tcp::endpoint> parse_endpoint(std::string_view text);

}  // namespace ambient::net
