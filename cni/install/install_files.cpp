#include "cni/install/install_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>

#include "cni/api/files.h"
#include "common/net/fd.h"

namespace ambient::cni::install {

namespace {

constexpr std::size_t kChunkBytes = 64 * 1024;

Error errno_error(std::string_view op, const std::string& path, int err) {
  Error e = errorf(err == ENOENT ? ErrorKind::NotFound : ErrorKind::Io, "{} {}: {}", op, path, std::strerror(err));
  e.code = err;
  return e;
}

FileStamp stamp_of(const struct stat& st) {
  return FileStamp{st.st_dev, st.st_ino, st.st_size, static_cast<long>(st.st_mtim.tv_sec),
                   static_cast<long>(st.st_mtim.tv_nsec), st.st_mode, st.st_uid, st.st_gid};
}

Result<void> write_all(int fd, std::string_view data, const std::string& path) {
  if (const int err = cni::write_all(fd, data); err != 0) return errno_error("write", path, err);
  return ok();
}

// Reads up to buf.size() bytes, retrying short reads until EOF or a full buffer. Returns the count.
Result<std::size_t> read_full(int fd, char* buf, std::size_t size, const std::string& path) {
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, buf + got, size - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("read", path, errno);
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

// A temporary file next to `path`, removed on destruction unless committed (renamed).
class TempFile {
 public:
  static Result<TempFile> create(const std::string& path) {
    std::string name = dir_of(path) + "/" + std::string(kTempFilePrefix) + "XXXXXX";
    const int fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0) return errno_error("create a temporary file for", path, errno);
    return TempFile(net::UniqueFd(fd), std::move(name));
  }
  TempFile(TempFile&& o) noexcept : fd_(std::move(o.fd_)), name_(std::move(o.name_)), committed_(o.committed_) {
    o.committed_ = true;
  }
  TempFile& operator=(TempFile&&) = delete;
  ~TempFile() {
    if (!committed_) ::unlink(name_.c_str());
  }
  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }

  // fsync, mode, owner, close, rename over `path`, fsync of the directory.
  Result<void> commit(const std::string& path, mode_t mode, const FileStamp* owner) {
    if (::fsync(fd_.get()) != 0) return errno_error("fsync", name_, errno);
    if (::fchmod(fd_.get(), mode & 07777) != 0) return errno_error("chmod", name_, errno);
    if (owner != nullptr && ::geteuid() == 0 && ::fchown(fd_.get(), owner->uid, owner->gid) != 0) {
      return errno_error("chown", name_, errno);
    }
    if (::close(fd_.release()) != 0) return errno_error("close", name_, errno);
    if (::rename(name_.c_str(), path.c_str()) != 0) return errno_error("rename " + name_ + " to", path, errno);
    committed_ = true;
    // The rename is durable once the directory is synced; a failure here loses nothing but durability.
    net::UniqueFd dir(::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.valid()) ::fsync(dir.get());
    return ok();
  }

 private:
  TempFile(net::UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
  net::UniqueFd fd_;
  std::string name_;
  bool committed_ = false;
};

net::UniqueFd open_read(const std::string& path) { return net::UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)); }

}  // namespace

std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_name(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<std::optional<FileStamp>> stat_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::optional<FileStamp>();
    return errno_error("stat", path, errno);
  }
  return std::optional<FileStamp>(stamp_of(st));
}

Result<std::string> read_file(const std::string& path, std::size_t max_bytes) {
  net::UniqueFd fd = open_read(path);
  if (!fd.valid()) return errno_error("open", path, errno);
  std::string out;
  std::array<char, kChunkBytes> buf;
  for (;;) {
    auto n = read_full(fd.get(), buf.data(), buf.size(), path);
    if (!n) return std::move(n).error();
    if (out.size() + *n > max_bytes) {
      return errorf(ErrorKind::ResourceExhausted, "{}: larger than the {} bytes allowed", path, max_bytes);
    }
    out.append(buf.data(), *n);
    if (*n < buf.size()) return out;
  }
}

Result<void> write_file_atomically(const std::string& path, std::string_view content, mode_t mode,
                                   const FileStamp* owner) {
  auto tmp = TempFile::create(path);
  if (!tmp) return std::move(tmp).error();
  AMBIENT_TRY(write_all(tmp->fd(), content, tmp->name()));
  return tmp->commit(path, mode, owner);
}

Result<void> copy_file_atomically(const std::string& src, const std::string& dst, mode_t mode) {
  net::UniqueFd in = open_read(src);
  if (!in.valid()) return errno_error("open", src, errno);
  auto tmp = TempFile::create(dst);
  if (!tmp) return std::move(tmp).error();
  auto buf = std::make_unique<std::array<char, kChunkBytes>>();
  for (;;) {
    auto n = read_full(in.get(), buf->data(), buf->size(), src);
    if (!n) return std::move(n).error();
    AMBIENT_TRY(write_all(tmp->fd(), std::string_view(buf->data(), *n), tmp->name()));
    if (*n < buf->size()) break;
  }
  return tmp->commit(dst, mode, nullptr);
}

Result<bool> same_content(const std::string& a, const std::string& b) {
  net::UniqueFd fa = open_read(a);
  if (!fa.valid()) return errno_error("open", a, errno);
  net::UniqueFd fb = open_read(b);
  if (!fb.valid()) {
    if (errno == ENOENT) return false;
    return errno_error("open", b, errno);
  }
  struct stat sa {}, sb {};
  if (::fstat(fa.get(), &sa) != 0) return errno_error("stat", a, errno);
  if (::fstat(fb.get(), &sb) != 0) return errno_error("stat", b, errno);
  if (sa.st_size != sb.st_size) return false;
  auto bufs = std::make_unique<std::array<char, 2 * kChunkBytes>>();
  char* ba = bufs->data();
  char* bb = bufs->data() + kChunkBytes;
  for (;;) {
    auto na = read_full(fa.get(), ba, kChunkBytes, a);
    if (!na) return std::move(na).error();
    auto nb = read_full(fb.get(), bb, kChunkBytes, b);
    if (!nb) return std::move(nb).error();
    if (*na != *nb || std::memcmp(ba, bb, *na) != 0) return false;
    if (*na < kChunkBytes) return true;
  }
}

Result<bool> remove_file(const std::string& path) {
  if (::unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  return errno_error("unlink", path, errno);
}

Result<std::vector<std::string>> list_regular_files(const std::string& dir) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) return errno_error("list", dir, errno);
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(d.get());
    if (e == nullptr) {
      if (errno != 0) return errno_error("list", dir, errno);
      break;
    }
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (::stat((dir + "/" + name).c_str(), &st) != 0) continue;  // gone meanwhile, or a dangling symlink
    if (S_ISREG(st.st_mode)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<void> make_dirs(const std::string& dir, mode_t mode) {
  if (dir.empty() || dir == "/" || dir == ".") return ok();
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return ok();
    return errorf(ErrorKind::Io, "{} exists and is not a directory", dir);
  }
  AMBIENT_TRY(make_dirs(dir_of(dir), mode));
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) return errno_error("mkdir", dir, errno);
  return ok();
}

}  // namespace ambient::cni::install
