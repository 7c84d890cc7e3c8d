#pragma once
// Conversions between state::IpAddr and Boost.Asio addresses, for the I/O code (outbound, inbound).
// Header-only so that ambient_state itself does not depend on Asio; include it only from targets
// that link ambient_asio.
#include <algorithm>

#include <boost/asio/ip/address.hpp>

#include "common/state/ip_addr.h"

namespace ambient::state {

// The result is canonical: an IPv4-mapped IPv6 peer address (dual-stack socket) becomes IPv4.
inline IpAddr from_asio(const boost::asio::ip::address& a) noexcept {
  if (a.is_v4()) return IpAddr::v4(a.to_v4().to_bytes());
  return IpAddr::v6(a.to_v6().to_bytes()).canonical();
}

inline boost::asio::ip::address to_asio(const IpAddr& ip) noexcept {
  if (ip.is_v4()) {
    boost::asio::ip::address_v4::bytes_type b;
    std::copy_n(ip.bytes().begin(), 4, b.begin());
    return boost::asio::ip::address_v4(b);
  }
  boost::asio::ip::address_v6::bytes_type b;
  std::copy_n(ip.bytes().begin(), 16, b.begin());
  return boost::asio::ip::address_v6(b);
}

}  // namespace ambient::state
