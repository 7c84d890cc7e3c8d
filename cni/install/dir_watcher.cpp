#include "cni/install/dir_watcher.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace ambient::cni::install {

namespace asio = boost::asio;

std::string describe_inotify_mask(std::uint32_t mask) {
  static constexpr struct {
    std::uint32_t bit;
    std::string_view name;
  } kBits[] = {{IN_CREATE, "IN_CREATE"},         {IN_DELETE, "IN_DELETE"},         {IN_MOVED_FROM, "IN_MOVED_FROM"},
               {IN_MOVED_TO, "IN_MOVED_TO"},     {IN_CLOSE_WRITE, "IN_CLOSE_WRITE"}, {IN_ATTRIB, "IN_ATTRIB"},
               {IN_MODIFY, "IN_MODIFY"},         {IN_DELETE_SELF, "IN_DELETE_SELF"}, {IN_MOVE_SELF, "IN_MOVE_SELF"},
               {IN_IGNORED, "IN_IGNORED"},       {IN_Q_OVERFLOW, "IN_Q_OVERFLOW"}, {IN_ISDIR, "IN_ISDIR"}};
  std::string out;
  for (const auto& b : kBits) {
    if ((mask & b.bit) == 0) continue;
    if (!out.empty()) out += '|';
    out += b.name;
  }
  return out.empty() ? fmt::format("0x{:x}", mask) : out;
}

std::vector<RawInotifyEvent> parse_inotify_buffer(std::string_view bytes) {
  std::vector<RawInotifyEvent> out;
  while (bytes.size() >= sizeof(inotify_event)) {
    inotify_event head;
    std::memcpy(&head, bytes.data(), sizeof head);  // the buffer need not be aligned
    const std::size_t total = sizeof head + head.len;
    if (bytes.size() < total) break;
    RawInotifyEvent e;
    e.wd = head.wd;
    e.mask = head.mask;
    // The name is NUL-padded to `len` bytes.
    const std::string_view name = bytes.substr(sizeof head, head.len);
    e.name = std::string(name.substr(0, name.find('\0')));
    out.push_back(std::move(e));
    bytes.remove_prefix(total);
  }
  return out;
}

Result<std::unique_ptr<DirWatcher>> DirWatcher::create(asio::any_io_executor ex) {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return errorf(ErrorKind::Io, "inotify_init1: {}", std::strerror(errno));
  return std::unique_ptr<DirWatcher>(new DirWatcher(asio::posix::stream_descriptor(ex, fd)));
}

bool DirWatcher::watching(const std::string& dir) const {
  for (const auto& [wd, d] : dirs_) {
    if (d == dir) return true;
  }
  return false;
}

Result<void> DirWatcher::watch(const std::string& dir) {
  if (watching(dir)) return ok();
  if (!fd_.is_open()) return errorf(ErrorKind::Cancelled, "watch {}: the watcher is closed", dir);
  const int wd = ::inotify_add_watch(fd_.native_handle(), dir.c_str(), kMask);
  if (wd < 0) {
    const int err = errno;
    Error e = errorf(err == ENOENT ? ErrorKind::NotFound : ErrorKind::Io, "watch {}: {}", dir, std::strerror(err));
    e.code = err;
    return e;
  }
  dirs_[wd] = dir;
  return ok();
}

asio::awaitable<Result<std::vector<DirEvent>>> DirWatcher::next() {
  for (;;) {
    if (!fd_.is_open()) co_return errorf(ErrorKind::Cancelled, "inotify watcher closed");
    auto [ec, n] = co_await fd_.async_read_some(asio::buffer(buf_), asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted || !fd_.is_open()) co_return errorf(ErrorKind::Cancelled, "inotify watcher closed");
    if (ec == asio::error::try_again || ec == asio::error::would_block) continue;
    if (ec) co_return errorf(ErrorKind::Io, "read inotify events: {}", ec.message());
    std::vector<DirEvent> out;
    for (RawInotifyEvent& raw : parse_inotify_buffer(std::string_view(buf_.data(), n))) {
      DirEvent e;
      e.mask = raw.mask;
      e.name = std::move(raw.name);
      if (auto it = dirs_.find(raw.wd); it != dirs_.end()) {
        e.dir = it->second;
        if ((raw.mask & IN_IGNORED) != 0) dirs_.erase(it);  // the kernel dropped this watch
      } else if ((raw.mask & IN_Q_OVERFLOW) == 0) {
        continue;  // a late event of a watch already dropped
      }
      out.push_back(std::move(e));
    }
    if (!out.empty()) co_return out;
  }
}

void DirWatcher::close() {
  boost::system::error_code ignored;
  fd_.close(ignored);
  dirs_.clear();
}

}  // namespace ambient::cni::install
