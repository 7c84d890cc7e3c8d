#pragma once
// Small filesystem helpers shared by the store (its state file) and the API server (its socket).
#include <string>

#include "common/base/result.h"

namespace ambient::cni {

// "/a/b/c" -> "/a/b"; "/c" -> "/"; "c" -> ".".
std::string parent_dir(const std::string& path);

// mkdir -p: creates the missing directories of `dir` with mode 0700 (the agent's state is root's
// only); existing directories are left as they are. Io naming the directory when one cannot be made
// or a path component is not a directory.
Result<void> make_dirs(const std::string& dir);

}  // namespace ambient::cni
