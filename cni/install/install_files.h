#pragma once
// The installer's file operations on the host's CNI directories. Blocking syscalls (small files, or one
// plugin binary of a few MiB): run on the installer's executor, as the agent's other control work.
//
// Writes are atomic: a temporary file in the same directory (".ambient-cni-XXXXXX": a name libcni never
// reads, see primary_config.h), written, fsync'd, given its mode (and owner when we are root), renamed over
// the target, then the directory fsync'd. A runtime reading the directory sees the old file or the new
// one, never a partial one. Memory is bounded: binaries are compared and copied in 64 KiB chunks; config
// files are read whole up to a caller's limit.
#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"

namespace ambient::cni::install {

// Prefix of our temporary files: the watcher ignores events on them.
inline constexpr std::string_view kTempFilePrefix = ".ambient-cni-";

// What identifies one version of a file cheaply: equal stamps mean the file was not replaced or written
// since (inode, size, mtime with nanoseconds, mode).
struct FileStamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  long mtime_sec = 0;
  long mtime_nsec = 0;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  bool operator==(const FileStamp&) const = default;
};

// stat(2) (follows symlinks): nullopt when the path does not exist; Io for other failures.
Result<std::optional<FileStamp>> stat_file(const std::string& path);

// The whole file. NotFound when absent, ResourceExhausted when larger than `max_bytes`, Io otherwise.
Result<std::string> read_file(const std::string& path, std::size_t max_bytes);

// Writes `content` to `path` atomically with permission bits `mode`; `owner` (uid/gid of `owner`) is applied
// when given and we may chown (root), else the file belongs to us.
Result<void> write_file_atomically(const std::string& path, std::string_view content, mode_t mode,
                                   const FileStamp* owner = nullptr);

// Copies `src` to `dst` atomically with mode `mode` (chunked).
Result<void> copy_file_atomically(const std::string& src, const std::string& dst, mode_t mode);

// True when both files exist and hold the same bytes (chunked compare). False when `b` is absent; an
// absent `a` is NotFound.
Result<bool> same_content(const std::string& a, const std::string& b);

// unlink(2): true when removed, false when it was already absent.
Result<bool> remove_file(const std::string& path);

// The names of the regular files (symlinks to regular files included) in `dir`, sorted byte-wise.
// NotFound when `dir` does not exist.
Result<std::vector<std::string>> list_regular_files(const std::string& dir);

// mkdir -p with `mode` for the directories it creates.
Result<void> make_dirs(const std::string& dir, mode_t mode);

// "/a/b" -> "/a"; "b" -> ".".
std::string dir_of(const std::string& path);
// "/a/b" -> "b".
std::string base_name(const std::string& path);

}  // namespace ambient::cni::install
