#include "cni/kube/api_server_config.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <system_error>

#include <unistd.h>

namespace ambient::cni::kube {

namespace {

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '_';
}

Result<std::uint16_t> parse_port(std::string_view text, std::string_view what) {
  if (text.empty() || text.size() > 5) return errorf(ErrorKind::InvalidArgument, "{}: port '{}' is not 1..65535", what, text);
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return errorf(ErrorKind::InvalidArgument, "{}: port '{}' is not 1..65535", what, text);
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return errorf(ErrorKind::InvalidArgument, "{}: port '{}' is not 1..65535", what, text);
  return static_cast<std::uint16_t>(value);
}

// A DNS name or an IPv4 literal (letters, digits, '.', '-', '_'), or an IPv6 literal (hex digits, ':', '.').
Result<void> check_host(std::string_view host, std::string_view what) {
  if (host.empty()) return errorf(ErrorKind::InvalidArgument, "{}: empty host", what);
  const bool v6 = host.find(':') != std::string_view::npos;
  for (char c : host) {
    const bool fine = v6 ? (std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.') : is_host_char(c);
    if (!fine) return errorf(ErrorKind::InvalidArgument, "{}: host '{}' holds the character '{}'", what, host, c);
  }
  return ok();
}

Result<void> check_readable(const std::string& path, std::string_view role) {
  if (::access(path.c_str(), R_OK) != 0) {
    const int err = errno;
    return errorf(ErrorKind::InvalidArgument, "{} {}: {}", role, path, std::strerror(err));
  }
  return ok();
}

}  // namespace

std::string ApiServerConfig::authority() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::optional<std::string> process_env(std::string_view name) {
  const char* v = std::getenv(std::string(name).c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

Result<ApiServerConfig> parse_api_server_url(std::string_view url) {
  const std::string what = fmt::format("API server URL '{}'", url);
  constexpr std::string_view kScheme = "https://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return errorf(ErrorKind::InvalidArgument, "{}: must start with https:// (the token is a credential)", what);
  }
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return errorf(ErrorKind::InvalidArgument, "{}: only https://host[:port] is accepted (no path, query or user)", what);
  }
  ApiServerConfig config;
  std::string_view host;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return errorf(ErrorKind::InvalidArgument, "{}: '[' without ']'", what);
    host = rest.substr(1, close - 1);
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return errorf(ErrorKind::InvalidArgument, "{}: unexpected '{}' after ']'", what, after);
      port = after.substr(1);
      if (port.empty()) return errorf(ErrorKind::InvalidArgument, "{}: empty port", what);
    }
    if (host.find(':') == std::string_view::npos) {
      return errorf(ErrorKind::InvalidArgument, "{}: brackets hold '{}', not an IPv6 address", what, host);
    }
  } else {
    const auto colon = rest.find(':');
    host = rest.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) return errorf(ErrorKind::InvalidArgument, "{}: empty port", what);
    }
  }
  AMBIENT_TRY(check_host(host, what));
  config.host = std::string(host);
  if (!port.empty()) {
    auto p = parse_port(port, what);
    if (!p) return std::move(p).error();
    config.port = *p;
  }
  return config;
}

Result<ApiServerConfig> in_cluster_config(std::string_view url_override, std::string_view token_file,
                                          std::string_view ca_file, const EnvLookup& env) {
  ApiServerConfig config;
  if (!url_override.empty()) {
    auto parsed = parse_api_server_url(url_override);
    if (!parsed) return std::move(parsed).error();
    config = std::move(*parsed);
  } else {
    const auto host = env("KUBERNETES_SERVICE_HOST");
    if (!host || host->empty()) {
      return errorf(ErrorKind::InvalidArgument,
                    "KUBERNETES_SERVICE_HOST is not set: not running in a pod? pass the API server URL instead");
    }
    const auto port = env("KUBERNETES_SERVICE_PORT");
    if (!port || port->empty()) {
      return errorf(ErrorKind::InvalidArgument,
                    "KUBERNETES_SERVICE_PORT is not set (KUBERNETES_SERVICE_HOST is {}): not running in a pod? pass "
                    "the API server URL instead",
                    *host);
    }
    AMBIENT_TRY(check_host(*host, "KUBERNETES_SERVICE_HOST"));
    auto p = parse_port(*port, "KUBERNETES_SERVICE_PORT");
    if (!p) return std::move(p).error();
    config.host = *host;
    config.port = *p;
  }
  config.token_file = token_file.empty() ? std::string(kServiceAccountTokenFile) : std::string(token_file);
  config.ca_file = ca_file.empty() ? std::string(kServiceAccountCaFile) : std::string(ca_file);
  AMBIENT_TRY(check_readable(config.ca_file, "API server CA file"));
  AMBIENT_TRY(check_readable(config.token_file, "service account token file"));
  return config;
}

Result<std::string> read_token_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return errorf(err == ENOENT ? ErrorKind::NotFound : ErrorKind::Io, "token file {}: {}", path, std::strerror(err));
  }
  std::string token(kMaxTokenBytes + 1, '\0');
  in.read(token.data(), static_cast<std::streamsize>(token.size()));
  token.resize(static_cast<std::size_t>(in.gcount()));
  if (token.size() > kMaxTokenBytes) {
    return errorf(ErrorKind::InvalidArgument, "token file {}: larger than {} bytes", path, kMaxTokenBytes);
  }
  const auto first = token.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return errorf(ErrorKind::InvalidArgument, "token file {}: empty", path);
  const auto last = token.find_last_not_of(" \t\r\n");
  token = token.substr(first, last - first + 1);
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return errorf(ErrorKind::InvalidArgument,
                    "token file {}: holds a byte (0x{:02x}) an HTTP header cannot carry", path,
                    static_cast<unsigned>(static_cast<unsigned char>(c)));
    }
  }
  return token;
}

}  // namespace ambient::cni::kube
