#include "cni/kube/line_splitter.h"

namespace ambient::cni::kube {

namespace {
// Blank lines (a keep-alive "\n", a stray "\r\n") carry no event.
bool is_blank(std::string_view line) { return line.find_first_not_of(" \t\r") == std::string_view::npos; }
}  // namespace

Error LineSplitter::too_long() const {
  return errorf(ErrorKind::ResourceExhausted, "watch event line longer than {} bytes (the limit of one event)",
                max_line_bytes_);
}

Result<void> LineSplitter::feed(std::string_view bytes, const OnLine& on_line) {
  if (failed_) return too_long();
  while (!bytes.empty()) {
    const auto newline = bytes.find('\n');
    const std::string_view piece = bytes.substr(0, newline);
    if (partial_.size() + piece.size() > max_line_bytes_) {
      failed_ = true;
      partial_.clear();
      return too_long();
    }
    if (newline == std::string_view::npos) {
      partial_.append(piece);
      return ok();
    }
    bytes.remove_prefix(newline + 1);
    if (partial_.empty()) {
      if (!is_blank(piece)) AMBIENT_TRY(on_line(piece));  // the common case: no copy
      continue;
    }
    partial_.append(piece);
    std::string line = std::move(partial_);
    partial_.clear();
    if (!is_blank(line)) AMBIENT_TRY(on_line(line));
  }
  return ok();
}

Result<void> LineSplitter::finish(const OnLine& on_line) {
  if (failed_) return too_long();
  if (partial_.empty()) return ok();
  std::string line = std::move(partial_);
  partial_.clear();
  if (is_blank(line)) return ok();
  return on_line(line);
}

}  // namespace ambient::cni::kube
