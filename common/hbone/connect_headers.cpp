#include "common/hbone/connect_headers.h"

#include "common/net/endpoint.h"

#include <algorithm>
#include <span>

#include <fmt/format.h>
#include <openssl/rand.h>

namespace ambient::hbone {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr char kUpperHexDigits[] = "0123456789ABCDEF";  // percent-encoding (RFC 3986 2.1 prefers uppercase)

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// RFC 9110 tchar: "!#$%&'*+-.^_`|~", DIGIT, ALPHA.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar); }

int hex_value(char c, bool lowercase_only) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (!lowercase_only && c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// ---- baggage ----

// W3C baggage-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E (printable ASCII but SP " , ; \).
bool is_baggage_octet(unsigned char c) {
  return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) || (c >= 0x3C && c <= 0x5B) ||
         (c >= 0x5D && c <= 0x7E);
}

void append_baggage_value(std::string& out, std::string_view v) {
  for (unsigned char c : v) {
    if (is_baggage_octet(c) && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kUpperHexDigits[c >> 4]);
      out.push_back(kUpperHexDigits[c & 0xF]);
    }
  }
}

// Percent-decodes a raw value; nullopt for characters outside baggage-octet, a bad escape, or a
// control byte once decoded (it would end up in metric labels and logs).
std::optional<std::string> decode_baggage_value(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const auto c = static_cast<unsigned char>(raw[i]);
    if (!is_baggage_octet(c)) return std::nullopt;
    unsigned char byte = c;
    if (c == '%') {
      if (i + 2 >= raw.size()) return std::nullopt;  // '%' needs two hex digits after it
      const int hi = hex_value(raw[i + 1], false);
      const int lo = hex_value(raw[i + 2], false);
      if (hi < 0 || lo < 0) return std::nullopt;
      byte = static_cast<unsigned char>(hi << 4 | lo);
      i += 2;
    }
    if (byte < 0x20 || byte == 0x7F) return std::nullopt;
    out.push_back(static_cast<char>(byte));
  }
  return out;
}

struct BaggageKey {
  std::string_view key;
  std::string Baggage::*field;
  std::optional<WorkloadType> type;  // set for the k8s.<type>.name keys
};

constexpr std::array<BaggageKey, 10> kBaggageKeys{{
    {"k8s.cluster.name", &Baggage::cluster, std::nullopt},
    {"k8s.namespace.name", &Baggage::namespace_name, std::nullopt},
    {"k8s.deployment.name", &Baggage::workload_name, WorkloadType::Deployment},
    {"k8s.cronjob.name", &Baggage::workload_name, WorkloadType::CronJob},
    {"k8s.pod.name", &Baggage::workload_name, WorkloadType::Pod},
    {"k8s.job.name", &Baggage::workload_name, WorkloadType::Job},
    {"service.name", &Baggage::service, std::nullopt},
    {"service.version", &Baggage::revision, std::nullopt},
    {"cloud.region", &Baggage::region, std::nullopt},
    {"cloud.availability_zone", &Baggage::zone, std::nullopt},
}};

// One list-member: key OWS "=" OWS value *( OWS ";" OWS property ). Properties are ignored.
void apply_baggage_member(std::string_view member, Baggage& out) {
  const auto kv = member.substr(0, member.find(';'));
  const auto eq = kv.find('=');
  if (eq == std::string_view::npos) return;
  const auto key = trim_ows(kv.substr(0, eq));
  if (!is_token(key)) return;
  const auto it = std::find_if(kBaggageKeys.begin(), kBaggageKeys.end(),
                               [&](const BaggageKey& k) { return k.key == key; });
  if (it == kBaggageKeys.end()) return;
  auto value = decode_baggage_value(trim_ows(kv.substr(eq + 1)));
  if (!value) return;
  out.*(it->field) = std::move(*value);
  if (it->type && !(out.*(it->field)).empty()) out.workload_type = *it->type;
}

struct BaggageBudget {
  std::size_t bytes = 0;    // of header values seen so far, plus one joining comma each
  std::size_t members = 0;  // non-empty members seen so far
};

void parse_baggage_into(std::string_view value, Baggage& out, BaggageBudget& budget) {
  if (budget.bytes >= kMaxBaggageBytes || budget.members >= kMaxBaggageMembers) return;
  const std::size_t room = kMaxBaggageBytes - budget.bytes;
  budget.bytes = std::min(kMaxBaggageBytes, budget.bytes + value.size() + 1);
  if (value.size() > room) {  // keep whole members only
    if (value[room] == ',') {
      value = value.substr(0, room);
    } else {
      const auto cut = value.substr(0, room).rfind(',');
      value = cut == std::string_view::npos ? std::string_view{} : value.substr(0, cut);
    }
  }
  std::size_t pos = 0;
  while (budget.members < kMaxBaggageMembers) {
    const auto comma = value.find(',', pos);
    const auto member = trim_ows(value.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos));
    if (!member.empty()) {
      ++budget.members;
      apply_baggage_member(member, out);
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
}

// ---- forwarded ----

// A value as RFC 7239 wants it: a token verbatim, anything else a quoted-string with '"' and '\'
// escaped. Control characters (never in a valid host) are dropped: no header may carry them.
void append_forwarded_value(std::string& out, std::string_view v) {
  if (is_token(v)) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7F) continue;
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

// qdtext / quoted-pair payload: HTAB, SP, VCHAR, obs-text.
bool is_qtext_byte(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7F); }

std::string endpoint_string(const tcp::endpoint& ep) { return net::format_endpoint(ep); }

std::string hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (auto b : bytes) {
    out.push_back(kHexDigits[b >> 4]);
    out.push_back(kHexDigits[b & 0xF]);
  }
  return out;
}

// Lowercase hex of exactly out.size() bytes.
bool unhex(std::string_view s, std::span<std::uint8_t> out) {
  if (s.size() != out.size() * 2) return false;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(s[2 * i], true);
    const int lo = hex_value(s[2 * i + 1], true);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& a) {
  return std::all_of(a.begin(), a.end(), [](std::uint8_t b) { return b == 0; });
}

}  // namespace

std::string_view to_string(WorkloadType type) noexcept {
  switch (type) {
    case WorkloadType::Deployment: return "deployment";
    case WorkloadType::CronJob: return "cronjob";
    case WorkloadType::Pod: return "pod";
    case WorkloadType::Job: return "job";
  }
  return "unknown";
}

std::string build_baggage(const Baggage& b) {
  std::string out;
  auto add = [&out](std::string_view prefix, std::string_view name, std::string_view suffix, const std::string& v) {
    if (v.empty()) return;
    if (!out.empty()) out.push_back(',');
    out.append(prefix).append(name).append(suffix).push_back('=');
    append_baggage_value(out, v);
  };
  add("k8s.cluster.name", "", "", b.cluster);
  add("k8s.namespace.name", "", "", b.namespace_name);
  add("k8s.", to_string(b.workload_type), ".name", b.workload_name);
  add("service.name", "", "", b.service);
  add("service.version", "", "", b.revision);
  add("cloud.region", "", "", b.region);
  add("cloud.availability_zone", "", "", b.zone);
  return out;
}

Baggage parse_baggage(std::string_view value) {
  Baggage out;
  BaggageBudget budget;
  parse_baggage_into(value, out, budget);
  return out;
}

Baggage parse_baggage(const h2::Headers& headers) {
  Baggage out;
  BaggageBudget budget;
  for (const auto& h : headers) {
    if (h.name == kBaggageHeader) parse_baggage_into(h.value, out, budget);
  }
  return out;
}

std::string build_forwarded(const tcp::endpoint& source, std::string_view host) {
  std::string out = "for=";
  append_forwarded_value(out, endpoint_string(source));
  if (!host.empty()) {
    out.append(";host=");
    append_forwarded_value(out, host);
  }
  return out;
}

Result<Forwarded> parse_forwarded(std::string_view value) {
  Forwarded out;
  bool seen_for = false;
  bool seen_host = false;
  std::size_t i = 0;
  const auto skip_ows = [&] {
    while (i < value.size() && is_ows(value[i])) ++i;
  };
  // Empty list elements before the first one are allowed (RFC 9110 5.6.1).
  while (i < value.size() && (is_ows(value[i]) || value[i] == ',')) ++i;

  for (;;) {
    skip_ows();
    if (i == value.size() || value[i] == ',') break;  // end of the first element
    if (value[i] == ';') {                             // empty pair
      ++i;
      continue;
    }
    const std::size_t key_start = i;
    while (i < value.size() && is_tchar(value[i])) ++i;
    const auto key = value.substr(key_start, i - key_start);
    if (key.empty()) {
      return errorf(ErrorKind::Parse, "forwarded: byte 0x{:02x} at offset {} where a parameter name was expected",
                    static_cast<std::uint8_t>(value[i]), i);
    }
    skip_ows();
    if (i == value.size() || value[i] != '=') {
      return errorf(ErrorKind::Parse, "forwarded: parameter '{}' at offset {} has no '='", key, key_start);
    }
    ++i;
    skip_ows();

    std::string v;
    if (i < value.size() && value[i] == '"') {
      const std::size_t open = i++;
      bool closed = false;
      while (i < value.size()) {
        const auto c = static_cast<unsigned char>(value[i]);
        if (c == '"') {
          closed = true;
          ++i;
          break;
        }
        if (c == '\\') {
          if (i + 1 == value.size()) break;
          const auto escaped = static_cast<unsigned char>(value[i + 1]);
          if (!is_qtext_byte(escaped)) {
            return errorf(ErrorKind::Parse, "forwarded: control byte 0x{:02x} escaped at offset {}", escaped, i + 1);
          }
          v.push_back(static_cast<char>(escaped));
          i += 2;
          continue;
        }
        if (!is_qtext_byte(c)) {
          return errorf(ErrorKind::Parse, "forwarded: control byte 0x{:02x} in quoted value at offset {}", c, i);
        }
        v.push_back(static_cast<char>(c));
        ++i;
      }
      if (!closed) return errorf(ErrorKind::Parse, "forwarded: quoted value opened at offset {} is not closed", open);
    } else {
      const std::size_t start = i;
      while (i < value.size() && is_tchar(value[i])) ++i;
      if (i == start) {
        return errorf(ErrorKind::Parse, "forwarded: parameter '{}' has no value (offset {})", key, start);
      }
      v.assign(value.substr(start, i - start));
    }
    skip_ows();
    if (i < value.size() && value[i] != ';' && value[i] != ',') {
      return errorf(ErrorKind::Parse, "forwarded: unexpected byte 0x{:02x} at offset {} after parameter '{}'",
                    static_cast<std::uint8_t>(value[i]), i, key);
    }
    if (i < value.size() && value[i] == ';') ++i;

    // RFC 7239 4: a parameter MUST NOT occur more than once per element.
    if (iequals(key, "for")) {
      if (seen_for) return errorf(ErrorKind::Parse, "forwarded: 'for' repeated in the first element");
      seen_for = true;
      out.for_node = std::move(v);
    } else if (iequals(key, "host")) {
      if (seen_host) return errorf(ErrorKind::Parse, "forwarded: 'host' repeated in the first element");
      seen_host = true;
      out.host = std::move(v);
    }
  }
  return out;
}

std::optional<tcp::endpoint> parse_forwarded_node(std::string_view node) {
  std::string_view addr = node;
  std::string_view port;
  bool has_port = false;
  if (!node.empty() && node.front() == '[') {
    const auto close = node.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    addr = node.substr(1, close - 1);
    const auto rest = node.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = rest.substr(1);
      has_port = true;
    }
    if (addr.find(':') == std::string_view::npos) return std::nullopt;  // brackets are for IPv6 only
  } else if (std::count(node.begin(), node.end(), ':') == 1) {
    const auto colon = node.find(':');
    addr = node.substr(0, colon);
    port = node.substr(colon + 1);
    has_port = true;
  }
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(std::string(addr), ec);
  if (ec) return std::nullopt;
  unsigned value = 0;
  if (has_port) {
    if (port.empty() || port.size() > 5) return std::nullopt;  // "_obfport" and friends are not ports
    for (char c : port) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535) return std::nullopt;
  }
  return tcp::endpoint(ip, static_cast<std::uint16_t>(value));
}

TraceParent TraceParent::random() {
  TraceParent t;
  do {
    RAND_bytes(t.trace_id.data(), t.trace_id.size());
  } while (all_zero(t.trace_id));
  do {
    RAND_bytes(t.span_id.data(), t.span_id.size());
  } while (all_zero(t.span_id));
  return t;
}

std::string TraceParent::trace_id_hex() const { return hex(trace_id); }
std::string TraceParent::span_id_hex() const { return hex(span_id); }

std::string TraceParent::header() const {
  const std::array<std::uint8_t, 1> f{flags};
  return fmt::format("00-{}-{}-{}", trace_id_hex(), span_id_hex(), hex(f));
}

Result<TraceParent> parse_traceparent(std::string_view value) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55.
  constexpr std::size_t kLength = 55;
  if (value.size() != kLength) {
    return errorf(ErrorKind::Parse, "traceparent: {} bytes, want {}", value.size(), kLength);
  }
  if (value.substr(0, 2) != "00") {
    return errorf(ErrorKind::Parse, "traceparent: version is not 00");
  }
  if (value[2] != '-' || value[35] != '-' || value[52] != '-') {
    return errorf(ErrorKind::Parse, "traceparent: fields not separated by '-' at offsets 2, 35, 52");
  }
  TraceParent t;
  std::array<std::uint8_t, 1> flags{};
  if (!unhex(value.substr(3, 32), t.trace_id)) return errorf(ErrorKind::Parse, "traceparent: trace-id is not 32 lowercase hex digits");
  if (!unhex(value.substr(36, 16), t.span_id)) return errorf(ErrorKind::Parse, "traceparent: parent-id is not 16 lowercase hex digits");
  if (!unhex(value.substr(53, 2), flags)) return errorf(ErrorKind::Parse, "traceparent: flags are not 2 lowercase hex digits");
  if (all_zero(t.trace_id)) return errorf(ErrorKind::Parse, "traceparent: trace-id is all zeros");
  if (all_zero(t.span_id)) return errorf(ErrorKind::Parse, "traceparent: parent-id is all zeros");
  t.flags = flags[0];
  return t;
}

}  // namespace ambient::hbone
