#include "test/fuzz/fuzz_support.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace ambient::fuzz {

void check_failed(const char* cond, const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n  %s\n", file, line, cond, message.c_str());
  std::fflush(stderr);
  std::abort();
}

void check_error(const Error& e, std::initializer_list<ErrorKind> allowed) {
  FUZZ_CHECK(!e.context.empty(), "an error of kind {} has an empty context", to_string(e.kind));
  FUZZ_CHECK(std::find(allowed.begin(), allowed.end(), e.kind) != allowed.end(), "unexpected error kind {}: {}",
             to_string(e.kind), e.context);
}

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

int open_fd_count() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the directory stream's own descriptor
}

void FdLeakCheck::tick() {
  if (calls_++ % period_ != 0) return;
  const int now = open_fd_count();
  if (baseline_ < 0) {
    baseline_ = now;
    return;
  }
  FUZZ_CHECK(now <= baseline_ + slack_, "descriptor leak: {} open after {} inputs, {} at the start", now, calls_,
             baseline_);
}

void write_seeds_if_asked(const std::vector<std::pair<std::string, std::string>>& seeds) {
  const char* dir = std::getenv("AMBIENT_FUZZ_WRITE_SEEDS");
  if (dir == nullptr || *dir == '\0') return;
  for (const auto& [name, bytes] : seeds) {
    const std::string path = std::string(dir) + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "cannot write seed %s\n", path.c_str());
      std::exit(1);
    }
    std::fprintf(stderr, "wrote %s (%zu bytes)\n", path.c_str(), bytes.size());
  }
  std::exit(0);
}

}  // namespace ambient::fuzz
