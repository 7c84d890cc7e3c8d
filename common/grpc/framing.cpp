#include "common/grpc/framing.h"

#include <algorithm>

namespace ambient::grpc {

namespace {
// The body buffer grows as bytes arrive instead of reserving the announced length up front, so a
// 5-byte prefix alone cannot make us allocate max_message_size.
constexpr std::size_t kInitialReserve = 64u << 10;
}  // namespace

Result<void> append_frame(std::string& out, std::string_view message) {
  if (message.size() > kMaxWireMessageSize)
    return errorf(ErrorKind::InvalidArgument, "gRPC message of {} bytes does not fit the 32-bit length prefix",
                  message.size());
  const auto n = static_cast<std::uint32_t>(message.size());
  const char prefix[kFrameHeaderSize] = {0, static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                                         static_cast<char>(n >> 8), static_cast<char>(n)};
  out.reserve(out.size() + kFrameHeaderSize + message.size());
  out.append(prefix, kFrameHeaderSize);
  out.append(message);
  return ok();
}

Result<std::string> encode_frame(std::string_view message) {
  std::string out;
  AMBIENT_TRY(append_frame(out, message));
  return out;
}

Result<std::optional<std::string>> FrameDecoder::next(std::span<const std::uint8_t>& in) {
  if (failed_) return *failed_;
  if (header_len_ < kFrameHeaderSize) {
    const std::size_t take = std::min(kFrameHeaderSize - header_len_, in.size());
    std::copy_n(in.begin(), take, header_.begin() + static_cast<std::ptrdiff_t>(header_len_));
    header_len_ += take;
    in = in.subspan(take);
    if (header_len_ < kFrameHeaderSize) return std::optional<std::string>{};
    body_len_ = std::size_t{header_[1]} << 24 | std::size_t{header_[2]} << 16 | std::size_t{header_[3]} << 8 |
                std::size_t{header_[4]};
    if (header_[0] == 1)
      failed_ = make_error(ErrorKind::Unsupported, "gRPC message is compressed, but no compression was negotiated");
    else if (header_[0] != 0)
      failed_ = errorf(ErrorKind::Parse, "gRPC frame has compressed-flag {} (only 0 or 1 are defined)", header_[0]);
    else if (body_len_ > max_message_size_)
      failed_ = make_error(ErrorKind::ResourceExhausted,
                           fmt::format("gRPC message of {} bytes exceeds the limit of {} bytes", body_len_,
                                       max_message_size_),
                           8 /* RESOURCE_EXHAUSTED */);
    if (failed_) return *failed_;
    body_.clear();
    body_.reserve(std::min(body_len_, kInitialReserve));
  }
  const std::size_t take = std::min(body_len_ - body_.size(), in.size());
  body_.append(reinterpret_cast<const char*>(in.data()), take);
  in = in.subspan(take);
  if (body_.size() < body_len_) return std::optional<std::string>{};  // `in` is exhausted mid-body
  header_len_ = 0;
  body_len_ = 0;
  std::optional<std::string> msg(std::move(body_));
  body_ = std::string();
  return msg;
}

}  // namespace ambient::grpc
