#pragma once
// Socket options the data plane sets on native fds (pass `socket.native_handle()` for Asio sockets).
// Every function is one or a few setsockopt/getsockopt calls: no I/O, no blocking, thread-safe.
// Errors are ErrorKind::Io (InvalidArgument for refused arguments) with `code` = errno and a context
// naming the option, the value and the errno text, e.g.
//   "setsockopt(SO_MARK=1337) on fd 7: Operation not permitted".
//
// Privileges (Linux): SO_MARK and IP(V6)_TRANSPARENT need CAP_NET_ADMIN (or CAP_NET_RAW); the others
// need none.
#include <chrono>
#include <cstdint>

#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"

namespace ambient::net {

// Address family of a socket, for the options that exist once per IP version.
enum class IpFamily : std::uint8_t {
  V4,  // AF_INET: SOL_IP options
  V6,  // AF_INET6 (dual-stack included): SOL_IPV6 options
};

// Family of the socket (getsockopt SO_DOMAIN). Unsupported for non-IP sockets.
Result<IpFamily> socket_family(int fd);

// Destination the client originally connected to before an iptables REDIRECT (nat table) sent the
// connection to us: SO_ORIGINAL_DST (SOL_IP) first, then IP6T_SO_ORIGINAL_DST (SOL_IPV6) on AF_INET6
// sockets. An IPv4 connection on a dual-stack socket yields an IPv4 endpoint.
// NotFound when conntrack has no entry for the connection (nothing redirected it and conntrack is not
// tracking this netns); when conntrack tracks an unredirected connection the result is its local
// address. Callers on TPROXY paths fall back to local_endpoint() themselves.
Result<boost::asio::ip::tcp::endpoint> original_destination(int fd);

// SO_MARK: the fwmark on every packet this socket sends (ztunnel uses 1337 = 0x539 so in-pod
// iptables rules skip its own traffic).
Result<void> set_mark(int fd, std::uint32_t mark);

// IP_TRANSPARENT / IPV6_TRANSPARENT: bind to a non-local address (source-IP preservation) and accept
// TPROXY'd connections.
Result<void> set_transparent(int fd, IpFamily family);

// IP_FREEBIND / IPV6_FREEBIND: bind to an address that is not (yet) configured on an interface.
Result<void> set_freebind(int fd, IpFamily family);

// SO_REUSEPORT: several listeners (one per worker, or old and new process during an upgrade) share
// a port; the kernel spreads new connections over them. Set before bind().
Result<void> set_reuseport(int fd);

// SO_KEEPALIVE on, first probe after `idle` without traffic, then every `interval`, and the
// connection is dropped after `probes` unanswered probes. Limits (kernel): 1 <= idle, interval <=
// 32767 s; 1 <= probes <= 127; anything else is InvalidArgument before any option is touched.
// ztunnel's defaults: 180 s, 180 s, 9.
Result<void> set_keepalive(int fd, std::chrono::seconds idle, std::chrono::seconds interval, int probes);

// TCP_NODELAY: disable Nagle (a proxy forwards what it reads; batching is the sender's job).
Result<void> set_nodelay(int fd, bool on = true);

}  // namespace ambient::net
