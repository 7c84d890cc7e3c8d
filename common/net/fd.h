#pragma once
// UniqueFd: sole owner of one POSIX file descriptor (namespace handles, /proc files, raw sockets that
// are not yet handed to Asio). Closes on destruction; move-only. Invariant: get() is -1 or an fd this
// object must close exactly once.
#include <unistd.h>

#include <utility>

namespace ambient::net {

class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  // Gives up ownership; the caller now closes the fd.
  int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the current fd (if any) and owns `fd` instead. close() errors are ignored: on Linux the fd
  // is released even when close() reports EINTR/EIO, so retrying would close someone else's fd.
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace ambient::net
