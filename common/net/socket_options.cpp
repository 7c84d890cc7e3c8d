#include "common/net/socket_options.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace ambient::net {
namespace {

// The netfilter getsockopt numbers, from <linux/netfilter_ipv4.h> and
// <linux/netfilter_ipv6/ip6_tables.h>. Those kernel headers clash with glibc's <netinet/in.h> in C++,
// so the (stable ABI) values are restated here.
#ifndef SO_ORIGINAL_DST
constexpr int SO_ORIGINAL_DST = 80;
#endif
#ifndef IP6T_SO_ORIGINAL_DST
constexpr int IP6T_SO_ORIGINAL_DST = 80;
#endif
#ifndef IPV6_FREEBIND
constexpr int IPV6_FREEBIND = 78;  // Linux >= 4.15, <linux/in6.h>
#endif

constexpr int kMaxKeepaliveSeconds = 32767;  // MAX_TCP_KEEPIDLE / MAX_TCP_KEEPINTVL
constexpr int kMaxKeepaliveProbes = 127;     // MAX_TCP_KEEPCNT

std::string errno_text(int err) { return std::error_code(err, std::system_category()).message(); }

Error sockopt_error(const char* call, std::string_view what, int fd, int err) {
  auto kind = err == ENOENT ? ErrorKind::NotFound : ErrorKind::Io;
  return Error{kind, fmt::format("{}({}) on fd {}: {}", call, what, fd, errno_text(err)), err};
}

Result<void> set_int(int fd, int level, int option, int value, const char* name) {
  if (::setsockopt(fd, level, option, &value, sizeof value) != 0) {
    return sockopt_error("setsockopt", fmt::format("{}={}", name, value), fd, errno);
  }
  return ok();
}

}  // namespace

Result<IpFamily> socket_family(int fd) {
  int domain = 0;
  socklen_t len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
    return sockopt_error("getsockopt", "SO_DOMAIN", fd, errno);
  }
  if (domain == AF_INET) return IpFamily::V4;
  if (domain == AF_INET6) return IpFamily::V6;
  return errorf(ErrorKind::Unsupported, "fd {} is not an IP socket (domain {})", fd, domain);
}

Result<boost::asio::ip::tcp::endpoint> original_destination(int fd) {
  namespace ip = boost::asio::ip;
  sockaddr_in v4{};
  socklen_t len = sizeof v4;
  if (::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &v4, &len) == 0) {
    return ip::tcp::endpoint(ip::address_v4(ntohl(v4.sin_addr.s_addr)), ntohs(v4.sin_port));
  }
  const int err4 = errno;
  auto family = socket_family(fd);
  if (!family || *family != IpFamily::V6) return sockopt_error("getsockopt", "SO_ORIGINAL_DST", fd, err4);

  sockaddr_in6 v6{};
  len = sizeof v6;
  if (::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &v6, &len) == 0) {
    ip::address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), &v6.sin6_addr, bytes.size());
    return ip::tcp::endpoint(ip::address_v6(bytes, v6.sin6_scope_id), ntohs(v6.sin6_port));
  }
  const int err6 = errno;
  // Both lookups failed: report both, the IPv6 errno decides the kind (it is the socket's own family).
  auto e = sockopt_error("getsockopt", "IP6T_SO_ORIGINAL_DST", fd, err6);
  e.context = fmt::format("getsockopt(SO_ORIGINAL_DST) on fd {}: {}; {}", fd, errno_text(err4), e.context);
  return e;
}

Result<void> set_mark(int fd, std::uint32_t mark) {
  // SO_MARK takes the 32-bit mark through an int.
  return set_int(fd, SOL_SOCKET, SO_MARK, static_cast<int>(mark), "SO_MARK");
}

Result<void> set_transparent(int fd, IpFamily family) {
  if (family == IpFamily::V4) return set_int(fd, SOL_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT");
  return set_int(fd, SOL_IPV6, IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT");
}

Result<void> set_freebind(int fd, IpFamily family) {
  if (family == IpFamily::V4) return set_int(fd, SOL_IP, IP_FREEBIND, 1, "IP_FREEBIND");
  return set_int(fd, SOL_IPV6, IPV6_FREEBIND, 1, "IPV6_FREEBIND");
}

Result<void> set_reuseport(int fd) { return set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT"); }

Result<void> set_keepalive(int fd, std::chrono::seconds idle, std::chrono::seconds interval, int probes) {
  const auto in_range = [](std::chrono::seconds s) { return s.count() >= 1 && s.count() <= kMaxKeepaliveSeconds; };
  if (!in_range(idle) || !in_range(interval) || probes < 1 || probes > kMaxKeepaliveProbes) {
    return errorf(ErrorKind::InvalidArgument,
                  "keepalive idle={}s interval={}s probes={} on fd {}: want 1..{} s and 1..{} probes",
                  idle.count(), interval.count(), probes, fd, kMaxKeepaliveSeconds, kMaxKeepaliveProbes);
  }
  AMBIENT_TRY(set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"));
  AMBIENT_TRY(set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(idle.count()), "TCP_KEEPIDLE"));
  AMBIENT_TRY(set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(interval.count()), "TCP_KEEPINTVL"));
  return set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, probes, "TCP_KEEPCNT");
}

Result<void> set_nodelay(int fd, bool on) { return set_int(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, "TCP_NODELAY"); }

}  // namespace ambient::net
