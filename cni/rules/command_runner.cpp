#include "cni/rules/command_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "common/net/fd.h"

extern char** environ;

namespace ambient::cni {
namespace {

using net::UniqueFd;
using Clock = std::chrono::steady_clock;

// Directories searched after $PATH: the tools live in sbin, which a non-root PATH often lacks.
constexpr std::array<const char*, 6> kFallbackDirs{"/usr/local/sbin", "/usr/sbin", "/sbin",
                                                   "/usr/local/bin",  "/usr/bin",  "/bin"};

// What the child reports through the exec-status pipe when it cannot exec (nothing is written on success).
struct ChildFailure {
  int stage;  // 1 setns, 2 dup2, 3 execve
  int err;    // errno
};

std::string errno_text(int err) { return std::error_code(err, std::system_category()).message(); }

Error sys_error(const Command& c, int netns_fd, std::string_view what, int err) {
  Error e = errorf(ErrorKind::Io, "`{}` in netns fd {}: {}: {}", describe(c), netns_fd, what, errno_text(err));
  e.code = err;
  return e;
}

bool is_executable(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

Result<std::string> resolve_program(const std::string& name) {
  if (name.empty()) return errorf(ErrorKind::InvalidArgument, "run command: empty argv[0]");
  if (name.find('/') != std::string::npos) {
    if (is_executable(name)) return name;
    return errorf(ErrorKind::NotFound, "run command: {} is not an executable file", name);
  }
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest(path);
    while (!rest.empty()) {
      auto colon = rest.find(':');
      auto dir = rest.substr(0, colon);
      if (!dir.empty()) dirs.emplace_back(dir);
      rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    }
  }
  dirs.insert(dirs.end(), kFallbackDirs.begin(), kFallbackDirs.end());
  for (const auto& dir : dirs) {
    auto candidate = dir + "/" + name;
    if (is_executable(candidate)) return candidate;
  }
  return errorf(ErrorKind::NotFound, "run command: {} not found in $PATH or the sbin/bin directories", name);
}

// Reads what is available on `fd` into `out`. Returns false at EOF (or a hard error).
bool drain(int fd, std::string& out, std::size_t& total, std::size_t limit, bool& over_limit) {
  std::array<char, 16384> buffer;
  for (;;) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n > 0) {
      total += static_cast<std::size_t>(n);
      if (total > limit) {
        over_limit = true;
        return false;
      }
      out.append(buffer.data(), static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

Result<CommandResult> run_in_netns(int netns_fd, const Command& c, const CommandLimits& limits) {
  if (c.stdin_text.size() > kMaxStdinBytes) {
    return errorf(ErrorKind::ResourceExhausted, "`{}`: stdin of {} bytes exceeds {}", describe(c), c.stdin_text.size(),
                  kMaxStdinBytes);
  }
  auto program = resolve_program(c.argv.empty() ? std::string() : c.argv[0]);
  if (!program) return std::move(program).error();

  // Everything the child touches is built here, before fork().
  std::vector<char*> argv;
  for (const auto& arg : c.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  static constexpr char kLocale[] = "LC_ALL=C";
  std::vector<char*> envp;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, "LC_ALL=", 7) != 0) envp.push_back(*e);
  }
  envp.push_back(const_cast<char*>(kLocale));
  envp.push_back(nullptr);
  sigset_t no_signals_blocked;
  sigemptyset(&no_signals_blocked);

  // stdin: a memfd holding the whole text (no pipe to feed, so no SIGPIPE and no deadlock).
  UniqueFd stdin_fd(::memfd_create("ambient-command-stdin", MFD_CLOEXEC));
  if (!stdin_fd.valid()) return sys_error(c, netns_fd, "memfd_create", errno);
  for (std::size_t written = 0; written < c.stdin_text.size();) {
    ssize_t n = ::write(stdin_fd.get(), c.stdin_text.data() + written, c.stdin_text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(c, netns_fd, "write stdin memfd", errno);
    written += static_cast<std::size_t>(n);
  }
  if (::lseek(stdin_fd.get(), 0, SEEK_SET) != 0) return sys_error(c, netns_fd, "lseek stdin memfd", errno);

  std::array<int, 2> out_pipe{-1, -1}, err_pipe{-1, -1}, status_pipe{-1, -1};
  if (::pipe2(out_pipe.data(), O_CLOEXEC) != 0) return sys_error(c, netns_fd, "pipe2", errno);
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe.data(), O_CLOEXEC) != 0) return sys_error(c, netns_fd, "pipe2", errno);
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  if (::pipe2(status_pipe.data(), O_CLOEXEC) != 0) return sys_error(c, netns_fd, "pipe2", errno);
  UniqueFd status_read(status_pipe[0]), status_write(status_pipe[1]);

  const auto started = Clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) return sys_error(c, netns_fd, "fork", errno);
  if (pid == 0) {
    // Child: async-signal-safe calls only, no allocation.
    auto fail = [&](int stage) {
      ChildFailure failure{stage, errno};
      [[maybe_unused]] auto n = ::write(status_pipe[1], &failure, sizeof failure);
      ::_exit(127);
    };
    ::sigprocmask(SIG_SETMASK, &no_signals_blocked, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) fail(1);
    const std::array<int, 3> sources{stdin_fd.get(), out_pipe[1], err_pipe[1]};
    for (int target = 0; target < 3; ++target) {
      const int source = sources[static_cast<std::size_t>(target)];
      // dup2 onto itself keeps FD_CLOEXEC, so clear it by hand in that case.
      if (source == target ? ::fcntl(target, F_SETFD, 0) != 0 : ::dup2(source, target) < 0) fail(2);
    }
    ::execve(program->c_str(), argv.data(), envp.data());
    fail(3);
  }

  // Parent.
  out_write.reset();
  err_write.reset();
  status_write.reset();
  stdin_fd.reset();
  for (int fd : {out_read.get(), err_read.get()}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

  const auto deadline = started + limits.timeout;
  auto remaining_ms = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(std::min<long long>(left, 1000 * 60 * 60));
  };
  auto timed_out = [&] {
    kill_and_reap(pid);
    return errorf(ErrorKind::Timeout, "`{}` in netns fd {} did not finish within {} ms; killed", describe(c),
                  netns_fd, limits.timeout.count());
  };

  CommandResult result;
  std::size_t total = 0;
  bool over_limit = false;
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    std::array<pollfd, 2> fds{{{out_open ? out_read.get() : -1, POLLIN, 0}, {err_open ? err_read.get() : -1, POLLIN, 0}}};
    const int wait_ms = remaining_ms();
    if (wait_ms == 0) return timed_out();
    int n = ::poll(fds.data(), fds.size(), wait_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      kill_and_reap(pid);
      return sys_error(c, netns_fd, "poll", err);
    }
    if (out_open && fds[0].revents != 0) out_open = drain(out_read.get(), result.out, total, limits.max_output_bytes, over_limit);
    if (err_open && fds[1].revents != 0) err_open = drain(err_read.get(), result.err, total, limits.max_output_bytes, over_limit);
    if (over_limit) {
      kill_and_reap(pid);
      return errorf(ErrorKind::ResourceExhausted, "`{}` in netns fd {} wrote more than {} bytes of output; killed",
                    describe(c), netns_fd, limits.max_output_bytes);
    }
  }

  // Both streams are closed; the child is exiting (or closed them and lingers: bounded by the deadline).
  int status = 0;
  auto pause = std::chrono::microseconds(200);
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return sys_error(c, netns_fd, "waitpid", errno);
    if (remaining_ms() == 0) return timed_out();
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(20));
  }

  ChildFailure failure{};
  if (::read(status_read.get(), &failure, sizeof failure) == static_cast<ssize_t>(sizeof failure)) {
    static constexpr std::array<const char*, 4> kStage{"?", "setns(CLONE_NEWNET)", "dup2", "execve"};
    const auto stage = kStage[static_cast<std::size_t>(failure.stage >= 1 && failure.stage <= 3 ? failure.stage : 0)];
    return sys_error(c, netns_fd, fmt::format("child {} of {}", stage, *program), failure.err);
  }
  if (WIFSIGNALED(status)) {
    return errorf(ErrorKind::Internal, "`{}` in netns fd {} was killed by signal {}; stderr: {}", describe(c),
                  netns_fd, WTERMSIG(status), result.err);
  }
  result.exit_code = WEXITSTATUS(status);
  return result;
}

Result<CommandResult> run_checked(int netns_fd, const Command& c, const CommandLimits& limits) {
  auto result = run_in_netns(netns_fd, c, limits);
  if (!result) return result;
  if (result->exit_code != 0) {
    std::string_view err = result->err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.remove_suffix(1);
    Error e = errorf(ErrorKind::Io, "`{}` in netns fd {} exited with {}: {}", describe(c), netns_fd,
                     result->exit_code, err.empty() ? std::string_view("(no stderr)") : err);
    e.code = result->exit_code;
    return e;
  }
  return result;
}

}  // namespace ambient::cni
