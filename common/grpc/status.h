#pragma once
// gRPC call status: the code and message a call ends with, as carried by the `grpc-status` and
// `grpc-message` fields of the trailers (or of a Trailers-Only response's single HEADERS frame).
//
// Wire facts (gRPC over HTTP/2 spec):
//   grpc-status   decimal ASCII status code (0..16 defined; other values are passed through).
//   grpc-message  percent-encoded UTF-8: bytes outside 0x20..0x7E and '%' itself are sent as "%XX".
//                 Decoding never fails: an invalid "%" sequence is kept literally.
//   No grpc-status: a non-200 HTTP status decides (http-grpc-status-mapping.md); a 200 response that
//   ends without grpc-status is a protocol violation (the client reports INTERNAL).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.h"
#include "common/h2/headers.h"

namespace ambient::grpc {

// The canonical codes (grpc/include/grpc/status.h).
enum class StatusCode : int {
  Ok = 0,
  Cancelled = 1,           // the caller cancelled
  Unknown = 2,             // no better code (also: an unparsable grpc-status, unmapped HTTP statuses)
  InvalidArgument = 3,
  DeadlineExceeded = 4,    // the deadline passed (enforced by both sides)
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,   // also: a message over the receive limit
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,      // unknown method (also HTTP 404)
  Internal = 13,           // protocol violations seen by the client
  Unavailable = 14,        // connection failures, HTTP 502/503/504
  DataLoss = 15,
  Unauthenticated = 16,    // missing or bad credentials (also HTTP 401)
};

std::string_view to_string(StatusCode code) noexcept;  // "DEADLINE_EXCEEDED"; "CODE_<n>" beyond 16

struct Status {
  int code = 0;         // a StatusCode value (unknown values are kept as received)
  std::string message;  // decoded grpc-message ("" when absent)

  bool ok() const noexcept { return code == 0; }
  // Error{GrpcStatus, "<path>: <CODE_NAME>: <message>", code}. Only for non-OK statuses.
  Error to_error(std::string_view path) const;
};

// The status carried by `headers` (trailers, or Trailers-Only response headers); nullopt when they
// hold no grpc-status. A grpc-status that is not a decimal number gives UNKNOWN with a message saying so.
std::optional<Status> status_from_headers(const h2::Headers& headers);

// gRPC code for an HTTP response without grpc-status (http-grpc-status-mapping.md):
// 400→INTERNAL, 401→UNAUTHENTICATED, 403→PERMISSION_DENIED, 404→UNIMPLEMENTED,
// 429/502/503/504→UNAVAILABLE, anything else→UNKNOWN.
StatusCode status_from_http(int http_status) noexcept;

// grpc-message encoding (percent-encoding of bytes outside 0x20..0x7E and of '%').
std::string percent_encode(std::string_view message);
std::string percent_decode(std::string_view encoded);

}  // namespace ambient::grpc
