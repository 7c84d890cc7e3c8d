#pragma once
// Fixture for the gRPC client tests: grpc-test-server (a real grpc++ server, test/grpc_server/) run as a
// child process, a scratch directory, certificates made with the openssl CLI, and a session to dial.
//
// The server links grpc++ and OpenSSL, so it never shares this process (DESIGN.md section 2): it is
// posix_spawn'ed, its one stdout line "listening on <host>:<port>" gives the port, its stderr (one line
// per call) goes to <scratch>/server-<n>.log, and the destructor sends SIGTERM and reaps it (SIGKILL
// after 5 s).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <doctest/doctest.h>

#include "common/grpc/channel.h"
#include "common/grpc/client.h"
#include "test/grpc_server/echo.pb.h"
#include "test/support/paths.h"
#include "test/support/run_coro.h"

extern char** environ;

// GCC false positive (PR middle-end/109224) in TUs that define Asio coroutines: it pairs the coroutine
// frame's operator new with the frame's operator delete, which frees it correctly, and warns
// -Wmismatched-new-delete depending on inlining. Silenced for the test files that include this (as
// test/common/net/net_test_support.h does).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace ambient::test {

// mkdtemp directory, removed with its contents at scope exit.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ambient-grpc-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// An owned file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// grpc-test-server as a child process. started() is false (and error() says why) if it did not print
// its "listening on" line within 10 s.
class GrpcTestServer {
 public:
  // `host`: the address to listen on (port 0 picks one).
  GrpcTestServer(const ScratchDir& scratch, std::vector<std::string> extra_args, std::string host = "127.0.0.1") {
    static int serial = 0;
    log_path_ = scratch.file("server-" + std::to_string(++serial) + ".log");
    const std::string exe = binary_dir() + "/test/grpc_server/grpc-test-server";
    std::vector<std::string> args = {exe, "--listen", host + ":0"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
      error_ = "pipe2 failed";
      return;
    }
    Fd out_r(p[0]), out_w(p[1]);
    Fd log(::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_w.get(), STDOUT_FILENO);  // dup2 clears CLOEXEC
    if (log.get() >= 0) posix_spawn_file_actions_adddup2(&fa, log.get(), STDERR_FILENO);
    const int rc = ::posix_spawn(&pid_, exe.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      error_ = "posix_spawn " + exe + ": " + std::strerror(rc);
      return;
    }
    out_w.reset();  // the child holds the only write end: EOF if it dies

    std::string line;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < until) {
      pollfd pfd{out_r.get(), POLLIN, 0};
      if (::poll(&pfd, 1, 100) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(out_r.get(), buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<std::size_t>(n));
    }
    const std::string prefix = "listening on " + host + ":";
    if (line.rfind(prefix, 0) != 0) {
      error_ = "grpc-test-server did not start: stdout \"" + line + "\", log " + log_path_;
      return;
    }
    port_ = static_cast<std::uint16_t>(std::atoi(line.c_str() + prefix.size()));
  }

  ~GrpcTestServer() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > until) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  GrpcTestServer(const GrpcTestServer&) = delete;
  GrpcTestServer& operator=(const GrpcTestServer&) = delete;

  bool started() const { return port_ != 0; }
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return port_; }
  boost::asio::ip::tcp::endpoint endpoint() const { return {boost::asio::ip::make_address("127.0.0.1"), port_}; }
  std::string authority() const { return "127.0.0.1:" + std::to_string(port_); }
  // The server's stderr so far (one line per call), for failure messages.
  std::string log() const {
    std::ifstream in(log_path_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::string error_;
  std::string log_path_;
};

// Test certificates made with the openssl CLI (a separate process, like the server): P-256 keys.
//   ca.pem/ca.key          root CA                 server.pem/server.key  SAN IP:127.0.0.1, DNS:localhost
//   client.pem/client.key  SAN URI spiffe://cluster.local/ns/default/sa/ztunnel (clientAuth)
//   other-ca.pem           an unrelated root (for the wrong-CA test)
// Returns "" on success, else the failing command.
inline std::string make_test_certs(const ScratchDir& dir) {
  const std::string d = dir.path();
  std::ofstream(d + "/server.ext") << "basicConstraints=CA:FALSE\n"
                                      "keyUsage=critical,digitalSignature,keyEncipherment\n"
                                      "extendedKeyUsage=serverAuth\n"
                                      "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  std::ofstream(d + "/client.ext") << "basicConstraints=CA:FALSE\n"
                                      "keyUsage=critical,digitalSignature,keyEncipherment\n"
                                      "extendedKeyUsage=clientAuth\n"
                                      "subjectAltName=URI:spiffe://cluster.local/ns/default/sa/ztunnel\n";
  const std::vector<std::string> cmds = {
      "openssl ecparam -name prime256v1 -genkey -noout -out ca.key",
      "openssl req -x509 -new -key ca.key -subj /O=ambient-test-ca -days 2 -out ca.pem "
      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
      "openssl ecparam -name prime256v1 -genkey -noout -out other-ca.key",
      "openssl req -x509 -new -key other-ca.key -subj /O=ambient-other-ca -days 2 -out other-ca.pem "
      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
      "openssl ecparam -name prime256v1 -genkey -noout -out server.key",
      "openssl req -new -key server.key -subj /CN=localhost -out server.csr",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 -extfile server.ext "
      "-out server.pem",
      "openssl ecparam -name prime256v1 -genkey -noout -out client.key",
      "openssl req -new -key client.key -subj /O=ambient-test-client -out client.csr",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -set_serial 3 -days 2 -extfile client.ext "
      "-out client.pem",
  };
  for (const auto& c : cmds) {
    const std::string full = "cd '" + d + "' && " + c + " >/dev/null 2>>openssl.log";
    if (std::system(full.c_str()) != 0) return c;
  }
  return "";
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs `f(io)` (a coroutine) on a fresh single-threaded io_context until it completes. Background
// coroutines still running then (the session's run()) are destroyed with the io_context.
template <typename F>
auto run_test(F&& f) {
  boost::asio::io_context io(1);
  return run_coro(io, f(io));
}

// Settings for test sessions: no keepalive PINGs (tests are short; PING behaviour has its own tests).
inline h2::Settings quiet_settings() {
  h2::Settings s;
  s.ping_interval = std::chrono::milliseconds(0);
  return s;
}

inline std::string serialize(const EchoRequest& req) {
  std::string out;
  req.SerializeToString(&out);
  return out;
}

inline EchoRequest echo_request(std::string message) {
  EchoRequest r;
  r.set_message(std::move(message));
  return r;
}

}  // namespace ambient::test
