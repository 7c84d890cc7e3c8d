#pragma once
// Helpers shared by the common/net tests: byte patterns, external commands, temporary network
// namespaces (RAII), and visible root-only skips.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "test/support/paths.h"
#include "test/support/run_coro.h"

extern char** environ;

// GCC false positive (PR middle-end/109224, still open in later releases) in TUs that define Asio
// coroutines, depending on inlining (seen here at -O2, more with sanitizers): it pairs the coroutine
// frame's operator new (aligned_alloc inside Asio's recycling allocator) with the frame's operator
// delete, which frees it correctly, and warns -Wmismatched-new-delete. Silenced for the rest of each
// test file that includes this.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace ambient::test {

// Byte `i` of the test stream. Not periodic at any power of two below 16 MiB, so a dropped,
// duplicated or reordered chunk changes the bytes, not only the length.
inline std::uint8_t pattern_byte(std::uint64_t i) noexcept {
  return static_cast<std::uint8_t>((i * 167u) ^ (i >> 8) ^ (i >> 16) ^ (i >> 24));
}

inline void fill_pattern(std::span<std::uint8_t> out, std::uint64_t offset) noexcept {
  for (std::size_t k = 0; k < out.size(); ++k) out[k] = pattern_byte(offset + k);
}

// Offset of the first byte that differs from the pattern, or -1.
inline long long pattern_mismatch(std::span<const std::uint8_t> in, std::uint64_t offset) noexcept {
  for (std::size_t k = 0; k < in.size(); ++k) {
    if (in[k] != pattern_byte(offset + k)) return static_cast<long long>(offset + k);
  }
  return -1;
}

// Runs factory(io) to completion on a fresh single-threaded io_context, which is destroyed (with
// every fd it owns) before this returns.
template <typename Factory>
auto run_fresh(Factory&& factory) {
  boost::asio::io_context io(1);
  return run_coro(io, factory(io));
}

// Runs argv[0] (PATH lookup) with the given arguments, waits, returns its exit status (-1 if it could
// not be started or did not exit normally). stdout/stderr are inherited, for the test log.
inline int run_command(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// For `* doctest::skip(needs_root("what"))`: prints why the case is skipped (once, at registration)
// so the run log says SKIPPED and why, and doctest counts the case as skipped.
inline bool needs_root(const char* what) {
  if (is_root()) return false;
  std::printf("SKIPPED: %s: needs root (euid %d)\n", what, static_cast<int>(geteuid()));
  return true;
}

// A named netns (`ip netns add amb-test-<pid>-<n>`, so /var/run/netns/<name> exists) with lo up,
// deleted on destruction whatever happened in between. Check ok() before use.
class TempNetns {
 public:
  TempNetns() : name_("amb-test-" + std::to_string(getpid()) + "-" + std::to_string(next_id()++)) {
    created_ = run_command({"ip", "netns", "add", name_}) == 0;
    lo_up_ = created_ && run_command({"ip", "-n", name_, "link", "set", "lo", "up"}) == 0;
  }
  ~TempNetns() {
    if (created_) run_command({"ip", "netns", "del", name_});
  }
  TempNetns(const TempNetns&) = delete;
  TempNetns& operator=(const TempNetns&) = delete;

  bool ok() const { return created_ && lo_up_; }
  const std::string& name() const { return name_; }
  std::string path() const { return "/var/run/netns/" + name_; }
  // Runs a command inside: `ip netns exec <name> args...`.
  int exec(std::vector<std::string> args) const {
    args.insert(args.begin(), {"ip", "netns", "exec", name_});
    return run_command(args);
  }

 private:
  static std::atomic<int>& next_id() {
    static std::atomic<int> id{0};
    return id;
  }
  std::string name_;
  bool created_ = false;
  bool lo_up_ = false;
};

}  // namespace ambient::test
