#pragma once
// Where the tests find build outputs and checked-in data, and whether root-only tests may run.
#include <string>

namespace ambient::test {

std::string binary_dir();              // the CMake build directory
std::string source_dir();              // the repository root
std::string data_dir();                // test/data
bool is_root();
// Reads /proc/self/status VmRSS in bytes.
long rss_bytes();
// Number of open file descriptors of this process.
int open_fd_count();

}  // namespace ambient::test
