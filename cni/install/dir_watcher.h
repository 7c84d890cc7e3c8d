#pragma once
// DirWatcher: inotify on a few directories, read through an Asio posix::stream_descriptor.
//
// Contract: create() on the installer's executor; watch() each directory (a directory that does not exist
// yet is an error the caller retries later); co_await next() for each batch of events; close() cancels a
// pending next() (it then returns Cancelled). One next() at a time. When a watched directory is deleted or
// moved, the kernel drops its watch: next() reports IN_IGNORED for it and watching() turns false, so the
// caller re-adds it once the directory is back.
//
// Limits: one read takes at most kReadBytes of events (the kernel queues the rest; when its queue overflows
// it says IN_Q_OVERFLOW, which we report as an event with an empty dir: "something changed, look again").
#include <sys/inotify.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "common/base/result.h"

namespace ambient::cni::install {

struct DirEvent {
  std::string dir;   // the watched directory; empty for IN_Q_OVERFLOW
  std::string name;  // the entry's name inside `dir`; empty for events on the directory itself
  std::uint32_t mask = 0;
};

// "IN_CREATE|IN_ISDIR": for logs.
std::string describe_inotify_mask(std::uint32_t mask);

// One record of a read(2) on an inotify fd, before the wd is mapped to its directory.
struct RawInotifyEvent {
  int wd = -1;
  std::uint32_t mask = 0;
  std::string name;
};

// Splits the bytes of one read into records (pure: tested on hand-made buffers). A truncated record at the
// end (the kernel never writes one) ends the parse.
std::vector<RawInotifyEvent> parse_inotify_buffer(std::string_view bytes);

class DirWatcher {
 public:
  static constexpr std::size_t kReadBytes = 16 * 1024;
  // What we watch for: entries created, deleted, renamed in or out, written and closed, or chmod'ed.
  static constexpr std::uint32_t kMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE |
                                         IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

  static Result<std::unique_ptr<DirWatcher>> create(boost::asio::any_io_executor ex);

  // Idempotent for a directory already watched. NotFound / Io naming the directory otherwise.
  Result<void> watch(const std::string& dir);
  bool watching(const std::string& dir) const;

  // The next batch of events (at least one). Cancelled after close(); Io on a read error.
  boost::asio::awaitable<Result<std::vector<DirEvent>>> next();
  void close();

 private:
  explicit DirWatcher(boost::asio::posix::stream_descriptor fd) : fd_(std::move(fd)) {}

  boost::asio::posix::stream_descriptor fd_;
  std::map<int, std::string> dirs_;  // watch descriptor -> directory
  std::vector<char> buf_ = std::vector<char>(kReadBytes);
};

}  // namespace ambient::cni::install
