#pragma once
// LineSplitter: newline-delimited records out of a byte stream that arrives in arbitrary pieces (a watch
// body's chunks: one event may span several chunks, one chunk may hold several events). Pure, bounded.
//
// Invariant: at most `max_line_bytes` bytes are held (the unfinished line); a line longer than that is an
// error (ResourceExhausted, naming the limit) and the splitter stays failed: the stream cannot be resynced
// without trusting what follows.
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace ambient::cni::kube {

class LineSplitter {
 public:
  // `on_line` receives each complete line without its '\n' (blank lines are skipped). An error it returns
  // stops feed() and is returned.
  using OnLine = std::function<Result<void>(std::string_view line)>;

  explicit LineSplitter(std::size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

  Result<void> feed(std::string_view bytes, const OnLine& on_line);
  // End of stream: a last line without '\n' is delivered too (it may still be a whole event).
  Result<void> finish(const OnLine& on_line);

  std::size_t buffered() const noexcept { return partial_.size(); }

 private:
  Error too_long() const;

  std::size_t max_line_bytes_;
  std::string partial_;  // the unfinished line, <= max_line_bytes_
  bool failed_ = false;
};

}  // namespace ambient::cni::kube
