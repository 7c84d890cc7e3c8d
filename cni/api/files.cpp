#include "cni/api/files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ambient::cni {

std::string parent_dir(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Result<void> make_dirs(const std::string& dir) {
  if (dir.empty() || dir == "/" || dir == ".") return ok();
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return ok();
    return errorf(ErrorKind::Io, "{} exists and is not a directory", dir);
  }
  AMBIENT_TRY(make_dirs(parent_dir(dir)));
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    const int err = errno;
    Error e = errorf(ErrorKind::Io, "mkdir {}: {}", dir, std::strerror(err));
    e.code = err;
    return e;
  }
  return ok();
}

int write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

}  // namespace ambient::cni
