#pragma once
// Small filesystem helpers shared by the store (its state file), the API server (its socket) and the plugin
// installer (cni/install).
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace ambient::cni {

// "/a/b/c" -> "/a/b"; "/c" -> "/"; "c" -> ".".
std::string parent_dir(const std::string& path);

// Writes all of `data` to `fd` (short writes and EINTR retried). Returns 0, or the errno of the failed write
// (callers name the file in their own error vocabulary).
int write_all(int fd, std::string_view data);

// mkdir -p: creates the missing directories of `dir` with mode 0700 (the agent's state is root's
// only); existing directories are left as they are. Io naming the directory when one cannot be made
// or a path component is not a directory.
Result<void> make_dirs(const std::string& dir);

}  // namespace ambient::cni
