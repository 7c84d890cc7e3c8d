#pragma once
// Helpers shared by the ZDS tests (test/common/zds, test/cni/zds): a scratch directory, files with distinct
// identities to stand in for netns fds, and (st_dev, st_ino) comparison, the identity ztunnel uses.
#include "test/support/temp_dir.h"
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>

#include <doctest/doctest.h>

#include "common/net/fd.h"

namespace ambient::test {

using ScratchDir = TempDir;  // test/support/temp_dir.h

// Creates (or truncates) a regular file and returns an open fd on it: a stand-in netns with its own inode.
inline net::UniqueFd open_scratch_file(const std::string& path) {
  net::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  REQUIRE(fd.valid());
  return fd;
}

// (st_dev, st_ino): what ztunnel compares to tell one netns from another.
inline std::pair<dev_t, ino_t> file_identity(int fd) {
  struct stat st{};
  REQUIRE(::fstat(fd, &st) == 0);
  return {st.st_dev, st.st_ino};
}

}  // namespace ambient::test
