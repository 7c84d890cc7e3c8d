#pragma once
// Test helpers for the cni/api suites: a temporary directory, a PodEvents that records its calls,
// an ApiServer running on its own thread (ApiClient and the plugin binary block the calling thread),
// and a plugin runner (posix_spawn with env, stdin, captured stdout/stderr).
#include "test/support/temp_dir.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>

#include "cni/api/api_server.h"
#include "cni/api/pod.h"
#include "cni/api/pod_source.h"
#include "cni/api/pod_store.h"
#include "test/support/paths.h"

namespace ambient::cni::test_support {

using TempDir = ambient::test::TempDir;  // test/support/temp_dir.h

inline PodSpec sample_spec(std::string uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0") {
  PodSpec spec;
  spec.uid = std::move(uid);
  spec.name = "web-0";
  spec.namespace_ = "default";
  spec.service_account = "web";
  spec.netns = "/var/run/netns/cni-1234";
  spec.ips = {"10.0.0.5", "fd00::5"};
  return spec;
}

// PodEvents that records every call and answers as told. Touched only on the server's thread (use
// ServerThread::on_server to read it from the test).
class RecordingPodEvents final : public PodEvents {
 public:
  struct Added {
    PodSpec spec;
    PodSourceKind source;
  };

  std::vector<Added> added;
  std::vector<std::string> removed;
  std::optional<Error> fail_with;  // every add/remove fails with this while set
  bool hang = false;               // add_pod waits (an hour) instead of answering
  std::string pods = R"({"version":1,"pods":[]})";

  // PodEvents
  boost::asio::awaitable<Result<void>> add_pod(PodSpec spec, PodSourceKind source) override {
    added.push_back(Added{spec, source});
    if (hang) {
      boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, std::chrono::hours(1));
      co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    if (fail_with) co_return *fail_with;
    co_return ok();
  }
  // PodEvents
  boost::asio::awaitable<Result<void>> remove_pod(std::string uid) override {
    removed.push_back(uid);
    if (fail_with) co_return *fail_with;
    co_return ok();
  }
  // PodEvents
  std::string pods_json() const override { return pods; }
};

// An ApiServer with RecordingPodEvents on a background thread.
class ServerThread {
 public:
  explicit ServerThread(ApiServerOptions options) : work_(io_.get_executor()) {
    server_ = std::make_unique<ApiServer>(io_.get_executor(), std::move(options));
    auto started = server_->start(events_);
    REQUIRE_MESSAGE(started, (started ? std::string() : started.error().message()));
    thread_ = std::thread([this] { io_.run(); });
  }
  ~ServerThread() {
    on_server([this] { server_->stop(); });
    work_.reset();
    io_.stop();  // a hanging handler never finishes on its own
    thread_.join();
    server_.reset();
  }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;

  // Runs fn(events) on the server's thread and returns its result.
  template <typename Fn>
  auto on_server(Fn fn) -> std::invoke_result_t<Fn> {
    using R = std::invoke_result_t<Fn>;
    std::promise<R> done;
    auto future = done.get_future();
    boost::asio::post(io_, [&] {
      if constexpr (std::is_void_v<R>) {
        fn();
        done.set_value();
      } else {
        done.set_value(fn());
      }
    });
    return future.get();
  }

  RecordingPodEvents& events_unsafe() { return events_; }  // only inside on_server()
  ApiServer& server() { return *server_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  RecordingPodEvents events_;
  std::unique_ptr<ApiServer> server_;
  std::thread thread_;
};

struct ProcessResult {
  int exit_code = -1;  // -1: did not exit normally
  std::string out;
  std::string err;
};

inline std::string plugin_path() { return ambient::test::binary_dir() + "/cni/plugin/ambient-cni"; }

// Runs `exe` with exactly `env` as its environment, feeds `input` on stdin, collects stdout and
// stderr until both close, then waits for it.
inline ProcessResult run_process(const std::string& exe, const std::vector<std::string>& env, const std::string& input) {
  ::signal(SIGPIPE, SIG_IGN);  // the child may exit before reading all of stdin
  int in[2], out[2], err[2];
  REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);  // dup2 clears CLOEXEC
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
  std::vector<char*> argv{const_cast<char*>(exe.c_str()), nullptr};
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  REQUIRE_MESSAGE(rc == 0, "posix_spawn " << exe << ": " << std::strerror(rc));

  ProcessResult result;
  int in_fd = in[1];
  std::size_t written = 0;
  ::fcntl(in_fd, F_SETFL, O_NONBLOCK);
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  int out_fd = out[0], err_fd = err[0];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((out_fd >= 0 || err_fd >= 0) && std::chrono::steady_clock::now() < deadline) {
    pollfd fds[3] = {{in_fd, POLLOUT, 0}, {out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    if (::poll(fds, 3, 1000) < 0 && errno != EINTR) break;
    if (in_fd >= 0 && (fds[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = ::write(in_fd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      if (n < 0 && errno != EAGAIN) written = input.size();  // EPIPE: the child stopped reading
      if (written == input.size()) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
    for (int i = 1; i < 3; ++i) {
      int& fd = i == 1 ? out_fd : err_fd;
      std::string& sink = i == 1 ? result.out : result.err;
      if (fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        sink.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fd);
        fd = -1;
      }
    }
  }
  const bool timed_out = out_fd >= 0 || err_fd >= 0;
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) ::close(fd);
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

}  // namespace ambient::cni::test_support
