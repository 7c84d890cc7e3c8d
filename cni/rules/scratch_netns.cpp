#include "cni/rules/scratch_netns.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <system_error>

namespace ambient::cni {
namespace {

struct ThreadOutcome {
  int fd = -1;
  int err = 0;
  const char* step = "";
};

void* unshare_and_open(void* arg) {
  auto* outcome = static_cast<ThreadOutcome*>(arg);
  if (::unshare(CLONE_NEWNET) != 0) {
    *outcome = {-1, errno, "unshare(CLONE_NEWNET)"};
    return nullptr;
  }
  const int fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  *outcome = fd < 0 ? ThreadOutcome{-1, errno, "open /proc/thread-self/ns/net"} : ThreadOutcome{fd, 0, ""};
  return nullptr;  // the thread ends here, inside the new netns; only the fd keeps it alive
}

}  // namespace

Result<net::UniqueFd> create_scratch_netns() {
  ThreadOutcome outcome;
  pthread_t thread{};
  if (int err = ::pthread_create(&thread, nullptr, &unshare_and_open, &outcome); err != 0) {
    return Error{ErrorKind::Io, "create scratch netns: pthread_create: " + std::error_code(err, std::system_category()).message(), err};
  }
  ::pthread_join(thread, nullptr);
  if (outcome.fd < 0) {
    return Error{ErrorKind::Io,
                 std::string("create scratch netns: ") + outcome.step + ": " +
                     std::error_code(outcome.err, std::system_category()).message(),
                 outcome.err};
  }
  return net::UniqueFd(outcome.fd);
}

}  // namespace ambient::cni
