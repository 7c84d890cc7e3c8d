#pragma once
// Network namespaces: switch the *calling thread* into another netns to create sockets there.
//
// A socket belongs to the netns it was created in for its whole life, whatever thread later uses it.
// So the in-pod socket factory does: enter the pod netns, socket()/bind()/listen() (all synchronous),
// restore, then use the socket asynchronously from the worker as usual (ztunnel: inpod/config.rs).
//
// Invariants:
//  - setns(CLONE_NEWNET) changes only the calling thread. A NetnsGuard must be destroyed on the thread
//    that created it (checked: anything else aborts). Threads started while inside inherit the netns
//    and are not switched back: start none there.
//  - Never hold a NetnsGuard across co_await: other coroutines of the same io_context would run, and
//    create their sockets, in the wrong netns. Keep the guarded region synchronous (in_netns()).
//  - If switching back fails the process aborts: a thread silently left in a pod's netns would open
//    the wrong sockets, which is worse than crashing. (It needs the original netns fd to go bad, which
//    we own, so in practice it does not happen.)
// Needs CAP_SYS_ADMIN.
#include <sys/types.h>

#include <functional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "common/base/result.h"
#include "common/net/fd.h"

namespace ambient::net {

// Identity of a network namespace: the (device, inode) of its nsfs file. Two handles (fds, paths,
// /proc/<pid>/ns/net) refer to the same netns iff their ids are equal.
struct NetnsId {
  dev_t dev = 0;
  ino_t ino = 0;
  friend bool operator==(const NetnsId&, const NetnsId&) = default;
};

// Id of the netns behind an open namespace fd (fstat).
Result<NetnsId> netns_id(int netns_fd);
// Ok if `fd` is a network namespace handle (nsfs, type CLONE_NEWNET); what a peer passed us is checked so.
Result<void> check_is_netns(int fd);
// Id of the netns behind a path such as /var/run/netns/<name> or /proc/<pid>/ns/net (stat).
Result<NetnsId> netns_id(const std::string& path);
// Id of the calling thread's current netns (/proc/thread-self/ns/net).
Result<NetnsId> current_netns_id();

// Opens a netns handle (O_RDONLY | O_CLOEXEC) for later enter()/in_netns(). NotFound if absent.
Result<UniqueFd> open_netns(const std::string& path);

// RAII switch of the calling thread into a netns; the destructor switches back. Non-copyable;
// movable (the moved-from guard does nothing), so it can be returned in a Result.
class NetnsGuard {
 public:
  // setns() into the netns behind `netns_fd` (the fd is not kept; the caller still owns it).
  static Result<NetnsGuard> enter(int netns_fd);
  // Opens `path` (e.g. /var/run/netns/<name>), enters it, closes it again.
  static Result<NetnsGuard> enter(const std::string& path);

  NetnsGuard(NetnsGuard&& o) noexcept = default;
  NetnsGuard& operator=(NetnsGuard&&) = delete;  // assigning would have to restore mid-scope
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;
  ~NetnsGuard();

 private:
  NetnsGuard(UniqueFd original, std::thread::id owner) noexcept
      : original_(std::move(original)), owner_(owner) {}

  UniqueFd original_;      // the thread's netns before enter(); invalid once moved from
  std::thread::id owner_;  // the thread that entered and must restore
};

namespace detail {
template <typename T>
struct InNetnsResult {
  using type = Result<T>;
};
template <typename T>
struct InNetnsResult<Result<T>> {
  using type = Result<T>;
};
}  // namespace detail

// Runs fn() with the calling thread inside the netns, then switches back, and returns what fn
// returned as a Result (fn may return T, Result<T> or void). fn must be synchronous (see above).
// Errors: entering failed (fn is not run), or fn's own error.
template <typename Fn>
auto in_netns(int netns_fd, Fn&& fn) -> typename detail::InNetnsResult<std::invoke_result_t<Fn&>>::type {
  using R = std::invoke_result_t<Fn&>;
  auto guard = NetnsGuard::enter(netns_fd);
  if (!guard) return std::move(guard).error();
  if constexpr (std::is_void_v<R>) {
    std::invoke(fn);
    return ok();
  } else {
    return std::invoke(fn);  // the result is built before `guard` restores
  }
}

}  // namespace ambient::net
