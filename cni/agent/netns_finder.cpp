#include "cni/agent/netns_finder.h"

#include <dirent.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>

namespace ambient::cni {

namespace {

constexpr std::size_t kMaxCgroupBytes = 64 * 1024;

bool is_uid_char(char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }

// A Kubernetes UID is a 36-character UUID; the systemd layout writes its '-' as '_'.
std::optional<std::string> uid_after_pod(std::string_view text) {
  for (std::size_t at = text.find("pod"); at != std::string_view::npos; at = text.find("pod", at + 1)) {
    std::size_t end = at + 3;
    while (end < text.size() && is_uid_char(text[end])) ++end;
    std::string uid(text.substr(at + 3, end - at - 3));
    if (uid.size() != 36) continue;
    std::replace(uid.begin(), uid.end(), '_', '-');
    if (uid[8] != '-' || uid[13] != '-' || uid[18] != '-' || uid[23] != '-') continue;
    // The token must end there: "/", ".slice", or the end of the line.
    if (end < text.size() && text[end] != '/' && text.substr(end).rfind(".slice", 0) != 0) continue;
    std::transform(uid.begin(), uid.end(), uid.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return uid;
  }
  return std::nullopt;
}

std::string read_bounded(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::string out(max_bytes, '\0');
  in.read(out.data(), static_cast<std::streamsize>(max_bytes));
  out.resize(static_cast<std::size_t>(in.gcount()));
  return out;
}

// Field 22 of /proc/<pid>/stat (starttime); the command (field 2) may hold spaces and ')'.
std::uint64_t start_time_of(const std::string& stat_path) {
  const std::string stat = read_bounded(stat_path, 4096);
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return UINT64_MAX;
  std::size_t field = 2, pos = close + 1;
  while (pos < stat.size()) {
    while (pos < stat.size() && stat[pos] == ' ') ++pos;
    const std::size_t end = std::min(stat.find(' ', pos), stat.size());
    ++field;
    if (field == 22) {
      std::uint64_t v = 0;
      for (std::size_t i = pos; i < end; ++i) {
        if (!std::isdigit(static_cast<unsigned char>(stat[i]))) return UINT64_MAX;
        v = v * 10 + static_cast<std::uint64_t>(stat[i] - '0');
      }
      return v;
    }
    pos = end;
  }
  return UINT64_MAX;
}

bool all_digits(const char* s) {
  if (*s == '\0') return false;
  for (; *s != '\0'; ++s)
    if (!std::isdigit(static_cast<unsigned char>(*s))) return false;
  return true;
}

}  // namespace

std::optional<std::string> pod_uid_in_cgroup(std::string_view text) {
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    const std::string_view line = text.substr(start, end - start);
    // "hierarchy-ID:controllers:path": only the path counts.
    const auto second = line.find(':', line.find(':') == std::string_view::npos ? line.size() : line.find(':') + 1);
    if (second != std::string_view::npos) {
      const std::string_view path = line.substr(second + 1);
      if (path.find("kubepods") != std::string_view::npos)
        if (auto uid = uid_after_pod(path)) return uid;
    }
    start = end + 1;
  }
  return std::nullopt;
}

NetnsFinder::NetnsFinder(std::string proc_dir) : proc_dir_(std::move(proc_dir)) {}

std::map<std::string, PodNetns> NetnsFinder::scan() const {
  std::map<std::string, PodNetns> found;
  const auto host = net::netns_id(proc_dir_ + "/1/ns/net");
  DIR* dir = ::opendir(proc_dir_.c_str());
  if (dir == nullptr) return found;
  std::size_t pids = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (!all_digits(entry->d_name) || ++pids > kMaxScannedPids) continue;
    const std::string base = proc_dir_ + "/" + entry->d_name;
    const std::string ns_path = base + "/ns/net";
    auto id = net::netns_id(ns_path);
    if (!id) continue;  // exited, or not ours to see
    if (host && *id == *host) continue;
    const std::string cgroup = read_bounded(base + "/cgroup", kMaxCgroupBytes);
    auto uid = pod_uid_in_cgroup(cgroup);
    if (!uid) continue;
    const std::uint64_t start = start_time_of(base + "/stat");
    const int pid = std::atoi(entry->d_name);
    auto [it, inserted] = found.try_emplace(*uid, PodNetns{ns_path, *id, pid, start});
    if (!inserted && (start < it->second.start_time || (start == it->second.start_time && pid < it->second.pid)))
      it->second = PodNetns{ns_path, *id, pid, start};
  }
  ::closedir(dir);
  return found;
}

Result<std::pair<PodNetns, net::UniqueFd>> NetnsFinder::find(std::string_view uid, const std::vector<std::string>& ips) const {
  return open(scan(), uid, ips);
}

Result<std::pair<PodNetns, net::UniqueFd>> NetnsFinder::open(const std::map<std::string, PodNetns>& all, std::string_view uid,
                                                             const std::vector<std::string>& ips) const {
  const auto it = all.find(std::string(uid));
  if (it == all.end()) return errorf(ErrorKind::NotFound, "no process of pod {} under {}", uid, proc_dir_);
  auto fd = net::open_netns(it->second.path);
  if (!fd) return errorf(ErrorKind::NotFound, "netns of pod {} ({}): {}", uid, it->second.path, fd.error().context);
  if (auto id = net::netns_id(fd->get()); !id || !(*id == it->second.id))
    return errorf(ErrorKind::NotFound, "netns of pod {} changed while opening {} (process exited)", uid, it->second.path);
  if (!ips.empty()) {
    auto has = netns_has_any_ip(fd->get(), ips);
    if (!has) return std::move(has).error();
    if (!*has)
      return errorf(ErrorKind::NotFound, "netns of pod {} (pid {}) has none of its IPs ({}): not pairing them", uid,
                    it->second.pid, fmt::join(ips, ", "));
  }
  return std::pair{it->second, std::move(*fd)};
}

Result<bool> netns_has_any_ip(int netns_fd, const std::vector<std::string>& ips) {
  std::vector<boost::asio::ip::address> wanted;
  for (const auto& text : ips) {
    boost::system::error_code ec;
    auto a = boost::asio::ip::make_address(text, ec);
    if (!ec) wanted.push_back(a);
  }
  return net::in_netns(netns_fd, [&]() -> Result<bool> {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return errorf(ErrorKind::Internal, "getifaddrs in the pod's netns: {}", std::strerror(errno));
    bool match = false;
    for (const ifaddrs* i = list; i != nullptr && !match; i = i->ifa_next) {
      if (i->ifa_addr == nullptr) continue;
      boost::asio::ip::address a;
      if (i->ifa_addr->sa_family == AF_INET) {
        const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
        a = boost::asio::ip::address_v4(ntohl(sin->sin_addr.s_addr));
      } else if (i->ifa_addr->sa_family == AF_INET6) {
        const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
        boost::asio::ip::address_v6::bytes_type bytes;
        std::copy(std::begin(sin6->sin6_addr.s6_addr), std::end(sin6->sin6_addr.s6_addr), bytes.begin());
        a = boost::asio::ip::address_v6(bytes);
      } else {
        continue;
      }
      match = std::find(wanted.begin(), wanted.end(), a) != wanted.end();
    }
    ::freeifaddrs(list);
    return match;
  });
}

}  // namespace ambient::cni
