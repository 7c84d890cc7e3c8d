#pragma once
// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <doctest/doctest.h>

namespace ambient::test {

class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "ambient-test") {
    const char* base = getenv("TMPDIR");
    std::string templ = std::string(base && *base ? base : "/tmp") + "/" + std::string(prefix) + "-XXXXXX";
    REQUIRE(mkdtemp(templ.data()) != nullptr);
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }
  // Writes `content` to file(name) and returns that path.
  std::string write(std::string_view name, const std::string& content) const {
    std::ofstream out(file(name), std::ios::binary);
    out << content;
    REQUIRE(out.good());
    return file(name);
  }

 private:
  std::string path_;
};

}  // namespace ambient::test
