#include "common/grpc/status.h"

#include <charconv>

namespace ambient::grpc {

namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string_view to_string(StatusCode code) noexcept {
  switch (code) {
    case StatusCode::Ok: return "OK";
    case StatusCode::Cancelled: return "CANCELLED";
    case StatusCode::Unknown: return "UNKNOWN";
    case StatusCode::InvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::DeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::NotFound: return "NOT_FOUND";
    case StatusCode::AlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::PermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::ResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::FailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::Aborted: return "ABORTED";
    case StatusCode::OutOfRange: return "OUT_OF_RANGE";
    case StatusCode::Unimplemented: return "UNIMPLEMENTED";
    case StatusCode::Internal: return "INTERNAL";
    case StatusCode::Unavailable: return "UNAVAILABLE";
    case StatusCode::DataLoss: return "DATA_LOSS";
    case StatusCode::Unauthenticated: return "UNAUTHENTICATED";
  }
  return "CODE_OUT_OF_RANGE";
}

Error Status::to_error(std::string_view path) const {
  const auto c = static_cast<StatusCode>(code);
  std::string name = code >= 0 && code <= 16 ? std::string(to_string(c)) : fmt::format("CODE_{}", code);
  return make_error(ErrorKind::GrpcStatus,
                    message.empty() ? fmt::format("{}: {}", path, name) : fmt::format("{}: {}: {}", path, name, message),
                    code);
}

std::optional<Status> status_from_headers(const h2::Headers& headers) {
  auto raw = h2::find_header(headers, "grpc-status");
  if (!raw) return std::nullopt;
  Status st;
  if (auto m = h2::find_header(headers, "grpc-message")) st.message = percent_decode(*m);
  int code = -1;
  auto [end, ec] = std::from_chars(raw->data(), raw->data() + raw->size(), code);
  if (ec != std::errc() || end != raw->data() + raw->size() || raw->empty() || code < 0) {
    st.message = fmt::format("malformed grpc-status \"{}\"{}{}", *raw, st.message.empty() ? "" : ": ", st.message);
    st.code = static_cast<int>(StatusCode::Unknown);
    return st;
  }
  st.code = code;
  return st;
}

StatusCode status_from_http(int http_status) noexcept {
  switch (http_status) {
    case 400: return StatusCode::Internal;
    case 401: return StatusCode::Unauthenticated;
    case 403: return StatusCode::PermissionDenied;
    case 404: return StatusCode::Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504: return StatusCode::Unavailable;
    default: return StatusCode::Unknown;
  }
}

std::string percent_encode(std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(message.size());
  for (char ch : message) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string percent_decode(std::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] == '%' && i + 2 < encoded.size()) {
      const int hi = hex_value(encoded[i + 1]), lo = hex_value(encoded[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi << 4 | lo));
        i += 2;
        continue;
      }
    }
    out.push_back(encoded[i]);  // not an escape: kept as received
  }
  return out;
}

}  // namespace ambient::grpc
