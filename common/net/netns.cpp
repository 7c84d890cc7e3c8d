#include "common/net/netns.h"

#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <system_error>

#include <spdlog/spdlog.h>

namespace ambient::net {
namespace {

constexpr const char* kThreadNetns = "/proc/thread-self/ns/net";

std::string errno_text(int err) { return std::error_code(err, std::system_category()).message(); }

Error errno_error(int err, std::string what) {
  auto kind = err == ENOENT ? ErrorKind::NotFound : ErrorKind::Io;
  return Error{kind, fmt::format("{}: {}", what, errno_text(err)), err};
}

NetnsId id_of(const struct stat& st) { return NetnsId{st.st_dev, st.st_ino}; }

}  // namespace

Result<NetnsId> netns_id(int netns_fd) {
  struct stat st{};
  if (::fstat(netns_fd, &st) != 0) return errno_error(errno, fmt::format("fstat(netns fd {})", netns_fd));
  return id_of(st);
}

Result<void> check_is_netns(int fd) {
  const int type = ::ioctl(fd, NS_GET_NSTYPE);
  if (type < 0) return errno_error(errno, fmt::format("fd {} is not a namespace (ioctl NS_GET_NSTYPE)", fd));
  if (type != CLONE_NEWNET) return errorf(ErrorKind::InvalidArgument, "fd {} is a namespace of another type ({:#x}), not a network namespace", fd, type);
  return ok();
}

Result<NetnsId> netns_id(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return errno_error(errno, fmt::format("stat({})", path));
  return id_of(st);
}

Result<NetnsId> current_netns_id() { return netns_id(std::string(kThreadNetns)); }

Result<UniqueFd> open_netns(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(errno, fmt::format("open netns {}", path));
  return fd;
}

Result<NetnsGuard> NetnsGuard::enter(int netns_fd) {
  auto original = open_netns(kThreadNetns);
  if (!original) return std::move(original).error();
  if (::setns(netns_fd, CLONE_NEWNET) != 0) {
    return errno_error(errno, fmt::format("setns(fd {}, CLONE_NEWNET)", netns_fd));
  }
  return NetnsGuard(std::move(*original), std::this_thread::get_id());
}

Result<NetnsGuard> NetnsGuard::enter(const std::string& path) {
  auto target = open_netns(path);
  if (!target) return std::move(target).error();
  auto guard = enter(target->get());
  if (!guard) {
    auto e = std::move(guard).error();
    e.context = fmt::format("enter netns {}: {}", path, e.context);
    return e;
  }
  return guard;
}

NetnsGuard::~NetnsGuard() {
  if (!original_.valid()) return;  // moved from
  if (std::this_thread::get_id() != owner_) {
    spdlog::critical("NetnsGuard destroyed on another thread than the one that entered; aborting");
    std::abort();
  }
  if (::setns(original_.get(), CLONE_NEWNET) != 0) {
    spdlog::critical("setns back to the original netns failed: {}; aborting", errno_text(errno));
    std::abort();
  }
}

}  // namespace ambient::net
