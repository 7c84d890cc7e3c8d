#include "common/net/copy_buffer.h"

namespace ambient::net {

CopyBuffer::CopyBuffer()
    : data_(std::make_unique_for_overwrite<std::uint8_t[]>(kInitialSize)), size_(kInitialSize) {}

std::size_t CopyBuffer::size_for(std::uint64_t copied) noexcept {
  if (copied >= kJumboThreshold) return kJumboSize;
  if (copied >= kLargeThreshold) return kLargeSize;
  return kInitialSize;
}

void CopyBuffer::consumed(std::size_t n) {
  copied_ += n;
  const std::size_t want = size_for(copied_);
  if (want == size_) return;
  // Replace rather than resize: the old contents are already forwarded, copying them would be waste.
  data_ = std::make_unique_for_overwrite<std::uint8_t[]>(want);
  size_ = want;
}

}  // namespace ambient::net
