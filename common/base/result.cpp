#include "common/base/result.h"

namespace ambient {

std::string_view to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::InvalidArgument: return "invalid_argument";
    case ErrorKind::Parse: return "parse";
    case ErrorKind::NotFound: return "not_found";
    case ErrorKind::Io: return "io";
    case ErrorKind::ConnectRefused: return "connect_refused";
    case ErrorKind::Timeout: return "timeout";
    case ErrorKind::Closed: return "closed";
    case ErrorKind::Cancelled: return "cancelled";
    case ErrorKind::TlsHandshake: return "tls_handshake";
    case ErrorKind::PeerIdentity: return "peer_identity";
    case ErrorKind::Certificate: return "certificate";
    case ErrorKind::H2Protocol: return "h2_protocol";
    case ErrorKind::StreamReset: return "stream_reset";
    case ErrorKind::HttpStatus: return "http_status";
    case ErrorKind::GrpcStatus: return "grpc_status";
    case ErrorKind::ResourceExhausted: return "resource_exhausted";
    case ErrorKind::PolicyDenied: return "policy_denied";
    case ErrorKind::Unsupported: return "unsupported";
    case ErrorKind::Internal: return "internal";
  }
  return "unknown";
}

std::string Error::message() const {
  if (code != 0) return fmt::format("{} ({}): {}", to_string(kind), code, context);
  return fmt::format("{}: {}", to_string(kind), context);
}

}  // namespace ambient
