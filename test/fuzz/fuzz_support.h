#pragma once
// Helpers shared by the libFuzzer targets (test/fuzz/fuzz_*.cpp).
//
// Contract of every target: bad input never aborts; a broken invariant does (FUZZ_CHECK), so libFuzzer
// reports it as a crash with the input that broke it. Invariants checked everywhere:
//  - every Error has a non-empty context (an operator must be able to read why);
//  - a successful parse re-encodes and re-parses to the same value (round trip), where an encoder exists;
//  - no file descriptor leaks (FdLeakCheck).
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/result.h"

// Aborts with the condition, the place and a message when `cond` is false. Active in every build type
// (unlike assert, which RelWithDebInfo compiles out).
#define FUZZ_CHECK(cond, ...)                                                                      \
  do {                                                                                             \
    if (!(cond)) ::ambient::fuzz::check_failed(#cond, __FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)

namespace ambient::fuzz {

[[noreturn]] void check_failed(const char* cond, const char* file, int line, const std::string& message);

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The checks every returned Error must pass: a non-empty context and one of the `allowed` kinds.
void check_error(const Error& e, std::initializer_list<ErrorKind> allowed);

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF): what a JSON reply
// carrying `s` needs to stay parseable.
bool is_valid_utf8(std::string_view s);

// Number of open descriptors of this process (entries of /proc/self/fd, minus the one listing them).
int open_fd_count();

// Every `period` calls of tick(), compares open_fd_count() with the count of the first check and aborts
// when it grew by more than `slack` (a target leaking one descriptor per input trips it quickly, while
// libFuzzer's own descriptors stay constant).
class FdLeakCheck {
 public:
  explicit FdLeakCheck(int period = 1000, int slack = 8) : period_(period), slack_(slack) {}
  void tick();

 private:
  int period_, slack_;
  long calls_ = 0;
  int baseline_ = -1;
};

// Seeds: when AMBIENT_FUZZ_WRITE_SEEDS=<dir> is set, writes each (file name, bytes) into <dir> and exits
// the process with 0; otherwise does nothing. Call it from LLVMFuzzerInitialize, so
//   AMBIENT_FUZZ_WRITE_SEEDS=test/fuzz/corpus/fuzz_zds_request build-fuzz/test/fuzz/fuzz_zds_request
// regenerates the checked-in corpus from the encoders.
void write_seeds_if_asked(const std::vector<std::pair<std::string, std::string>>& seeds);

}  // namespace ambient::fuzz
