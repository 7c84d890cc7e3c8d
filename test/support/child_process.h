#pragma once
// ChildProcess: a real process (ztunnel, the node agent) started by a test with stdout+stderr in a log file;
// SIGTERM and reaped on destruction (SIGKILL after 5 s). The child gets stdin and the log file, no other fd.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ambient::test {

class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> args, std::string log_path) : log_(std::move(log_path)) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    // Nothing else of the test process leaks into the child: an inherited socket (a test server's accepted
    // connection) would outlive its close() in the test and keep the peer waiting.
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~ChildProcess() { stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `sig` and reaps the process; returns its exit status (-1 if killed by a signal or not running).
  int stop(int sig = SIGTERM) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    bool reaped = false;
    for (int i = 0; i < 100 && !reaped; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) reaped = true;
      else std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!reaped) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string text() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  bool wait_for(std::string_view needle, std::chrono::milliseconds timeout) const {
    for (auto t = timeout; t.count() > 0; t -= std::chrono::milliseconds(50)) {
      if (text().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  // Occurrences of `needle` in the log so far.
  std::size_t count(std::string_view needle) const {
    const std::string t = text();
    std::size_t n = 0;
    for (auto p = t.find(needle); p != std::string::npos; p = t.find(needle, p + needle.size())) ++n;
    return n;
  }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

}  // namespace ambient::test
