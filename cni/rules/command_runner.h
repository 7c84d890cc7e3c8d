#pragma once
// run_in_netns(): runs one external program (iptables-restore, nft, ip) inside a network namespace and
// collects its exit status and output. Synchronous: it blocks the calling thread for at most
// limits.timeout (plus the time to reap a killed child), so call it off the data-plane workers.
//
// Safe in a multi-threaded process: everything the child needs (resolved path, argv/envp arrays, fds) is
// prepared before fork(); between fork() and execve() the child makes only async-signal-safe calls
// (sigprocmask, signal, setns, dup2, fcntl, execve, write, _exit) and allocates nothing. Every fd we create
// is O_CLOEXEC, so concurrent forks elsewhere in the process do not keep them past their exec.
//
// Bounds: stdout+stderr together at most limits.max_output_bytes (more is ResourceExhausted and the child is
// killed); stdin_text at most kMaxStdinBytes; wall time limits.timeout (then SIGKILL, Timeout).
// The child's environment is ours plus LC_ALL=C, so tool messages are not translated.
#include <chrono>
#include <cstddef>
#include <string>

#include "cni/rules/command.h"
#include "common/base/result.h"

namespace ambient::cni {

struct CommandLimits {
  std::size_t max_output_bytes = 1 << 20;     // stdout + stderr, 1 MiB
  std::chrono::milliseconds timeout{10'000};  // from fork to exit
};

struct CommandResult {
  int exit_code = 0;  // WEXITSTATUS; a child killed by a signal is an error instead
  std::string out;    // stdout
  std::string err;    // stderr
};

inline constexpr std::size_t kMaxStdinBytes = 1 << 20;

// Runs `command` with its network namespace set to `netns_fd` (setns in the child; the caller's thread is
// untouched); netns_fd < 0 runs it in the caller's netns. A non-zero exit status is a value, not an error.
// Errors: NotFound (program not found / not executable), Io (setns, exec, pipe, fork failed: errno in
// `code`), Timeout, ResourceExhausted (output or stdin too large), Internal (killed by a signal).
Result<CommandResult> run_in_netns(int netns_fd, const Command& command, const CommandLimits& limits = {});

// run_in_netns, and a non-zero exit status becomes an Io error whose context names the command, the
// status and stderr, e.g. "`iptables-restore --noflush` in netns fd 7 exited with 1: line 2 failed: ...".
Result<CommandResult> run_checked(int netns_fd, const Command& command, const CommandLimits& limits = {});

}  // namespace ambient::cni
