#pragma once
// What every control-plane gRPC client of the data plane shares (istiod's Delta ADS at XDS_ADDRESS,
// the Istio CA at CA_ADDRESS): parsing the address setting and the per-call metadata.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/result.h"
#include "common/h2/headers.h"

namespace ambient::grpc {

struct Target {
  std::string host;  // DNS name or IP literal (IPv6 without brackets)
  std::uint16_t port = 0;
};

// Parses "https://host:port", "host:port" or "[v6]:port" (port required; a trailing '/' is allowed).
// `what` names the setting in errors ("XDS_ADDRESS", "CA_ADDRESS"); errors also quote the value.
Result<Target> parse_target(std::string_view address, std::string_view what);

// Metadata of a call to istiod, in this order:
//   authorization: Bearer <token>  the token file re-read now (projected tokens rotate); none if token_path is empty
//   clusterid: <cluster_id>        none if empty
//   extra...                       XDS_HEADER_* / CA_HEADER_*
// Errors: NotFound when the token file cannot be read, InvalidArgument when it is empty.
Result<h2::Headers> control_plane_metadata(const std::string& token_path, const std::string& cluster_id,
                                           const h2::Headers& extra);

}  // namespace ambient::grpc
