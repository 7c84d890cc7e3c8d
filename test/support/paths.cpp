#include "test/support/paths.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace ambient::test {

std::string binary_dir() { return AMBIENT_BINARY_DIR; }
std::string source_dir() { return AMBIENT_SOURCE_DIR; }
std::string data_dir() { return std::string(AMBIENT_SOURCE_DIR) + "/test/data"; }
bool is_root() { return geteuid() == 0; }

long rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream ss(line.substr(6));
      long kb = 0;
      ss >> kb;
      return kb * 1024;
    }
  }
  return -1;
}

int open_fd_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr) ++n;
    closedir(d);
    n -= 3;  // ".", "..", and the directory's own fd
  }
  return n;
}

}  // namespace ambient::test
