#include "common/grpc/metadata.h"

#include <array>
#include <cstdint>
#include <limits>

namespace ambient::grpc {

namespace {

constexpr std::int64_t kMaxTimeoutValue = 99'999'999;  // 8 digits

struct TimeoutUnit {
  char symbol;
  std::int64_t nanos;
};
// Coarsest first.
constexpr std::array<TimeoutUnit, 6> kUnits = {{{'H', 3'600'000'000'000},
                                                {'M', 60'000'000'000},
                                                {'S', 1'000'000'000},
                                                {'m', 1'000'000},
                                                {'u', 1'000},
                                                {'n', 1}}};

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Headers a caller may not set as metadata: HTTP/2 connection-specific fields (RFC 9113 8.2.2) and
// the ones the gRPC client itself owns.
constexpr std::array<std::string_view, 10> kReserved = {"content-type", "te",        "user-agent",       "host",
                                                        "connection",   "keep-alive", "proxy-connection", "upgrade",
                                                        "transfer-encoding", "content-length"};

}  // namespace

std::string encode_timeout(std::chrono::nanoseconds timeout) {
  const std::int64_t ns = timeout.count();
  if (ns <= 0) return "1n";
  for (const auto& u : kUnits)  // coarsest exact representation first
    if (ns % u.nanos == 0 && ns / u.nanos <= kMaxTimeoutValue) return fmt::format("{}{}", ns / u.nanos, u.symbol);
  for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {  // finest unit that fits, rounded up
    const std::int64_t v = ns / it->nanos + (ns % it->nanos != 0 ? 1 : 0);
    if (v <= kMaxTimeoutValue) return fmt::format("{}{}", v, it->symbol);
  }
  return fmt::format("{}H", kMaxTimeoutValue);  // unreachable for int64 nanoseconds (max ≈ 2.6e6 H)
}

Result<std::chrono::nanoseconds> parse_timeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9)
    return errorf(ErrorKind::Parse, "grpc-timeout \"{}\": want 1 to 8 digits and a unit", value);
  std::int64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return errorf(ErrorKind::Parse, "grpc-timeout \"{}\": not a decimal number", value);
    n = n * 10 + (c - '0');
  }
  const char unit = value.back();
  for (const auto& u : kUnits) {
    if (u.symbol != unit) continue;
    if (n > std::numeric_limits<std::int64_t>::max() / u.nanos) return std::chrono::nanoseconds::max();
    return std::chrono::nanoseconds(n * u.nanos);
  }
  return errorf(ErrorKind::Parse, "grpc-timeout \"{}\": unknown unit '{}' (want H M S m u n)", value, unit);
}

std::string base64_encode(std::string_view bytes, bool pad) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t n = std::uint32_t{static_cast<std::uint8_t>(bytes[i])} << 16 |
                            std::uint32_t{static_cast<std::uint8_t>(bytes[i + 1])} << 8 |
                            std::uint32_t{static_cast<std::uint8_t>(bytes[i + 2])};
    for (int shift : {18, 12, 6, 0}) out.push_back(kBase64[(n >> shift) & 63]);
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t n = std::uint32_t{static_cast<std::uint8_t>(bytes[i])} << 16;
    if (rest == 2) n |= std::uint32_t{static_cast<std::uint8_t>(bytes[i + 1])} << 8;
    out.push_back(kBase64[(n >> 18) & 63]);
    out.push_back(kBase64[(n >> 12) & 63]);
    if (rest == 2) out.push_back(kBase64[(n >> 6) & 63]);
    if (pad) out.append(rest == 2 ? "=" : "==");
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  std::size_t pad = 0;  // '=' only at the end, only to complete the last 4-character group
  while (pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  if (pad > 2 || (pad > 0 && text.size() % 4 != 0))
    return errorf(ErrorKind::Parse, "base64: misplaced padding in a value of {} characters", text.size());
  text.remove_suffix(pad);
  if (text.size() % 4 == 1) return errorf(ErrorKind::Parse, "base64: {} characters cannot be a length", text.size());
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = base64_value(c);
    if (v < 0) return errorf(ErrorKind::Parse, "base64: invalid character 0x{:02x}", static_cast<unsigned char>(c));
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return make_error(ErrorKind::Parse, "base64: non-zero trailing bits");
  return out;
}

Result<void> validate_metadata(std::string_view name, std::string_view value) {
  if (name.empty()) return make_error(ErrorKind::InvalidArgument, "gRPC metadata: empty name");
  for (char c : name) {
    const bool good = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!good)
      return errorf(ErrorKind::InvalidArgument, "gRPC metadata \"{}\": names are lower-case [0-9a-z_.-] only", name);
  }
  if (name.starts_with("grpc-"))
    return errorf(ErrorKind::InvalidArgument, "gRPC metadata \"{}\": grpc-* names are reserved", name);
  for (auto r : kReserved)
    if (name == r) return errorf(ErrorKind::InvalidArgument, "gRPC metadata \"{}\": set by the gRPC client itself", name);
  if (is_binary_header(name)) return ok();
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e)
      return errorf(ErrorKind::InvalidArgument,
                    "gRPC metadata \"{}\": byte 0x{:02x} in an ASCII value (use a -bin name for bytes)", name, u);
  }
  return ok();
}

h2::Headers to_metadata(const h2::Headers& wire) {
  h2::Headers out;
  out.reserve(wire.size());
  for (const auto& h : wire) {
    if (h.name.starts_with(':')) continue;
    if (is_binary_header(h.name)) {
      if (auto d = base64_decode(h.value)) {
        out.push_back({h.name, std::move(*d)});
        continue;
      }
    }
    out.push_back(h);
  }
  return out;
}

}  // namespace ambient::grpc
