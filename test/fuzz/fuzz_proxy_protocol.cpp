// fuzz_proxy_protocol: net::parse_proxy_v2 as the waypoint runs it on the first bytes of a sandwich-binding
// connection (common/net/proxy_protocol.h).
//
// Input: the connection's first bytes. Invariants:
//  - a complete parse consumes at most the input and at most kMaxProxyHeader bytes;
//  - nullopt (need more) only for inputs shorter than the header they announce;
//  - errors are Parse with a context;
//  - a parsed PROXY header (not LOCAL) re-encodes and re-parses to the same addresses and TLVs.
#include <cstdint>

#include "common/net/proxy_protocol.h"
#include "test/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ambient;
  auto r = net::parse_proxy_v2(std::span<const std::uint8_t>(data, size));
  if (!r) {
    fuzz::check_error(r.error(), {ErrorKind::Parse});
    return 0;
  }
  if (!r->has_value()) {
    FUZZ_CHECK(size < net::kMaxProxyHeader, "need-more for {} bytes", size);
    return 0;
  }
  const auto& p = **r;
  FUZZ_CHECK(p.consumed <= size && p.consumed <= net::kMaxProxyHeader, "consumed {} of {}", p.consumed, size);
  if (p.header.local) return 0;
  const std::string again = net::encode_proxy_v2(p.header.source, p.header.destination, p.header.tlvs);
  auto back = net::parse_proxy_v2(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(again.data()), again.size()));
  FUZZ_CHECK(back && back->has_value(), "re-encoded header does not parse");
  FUZZ_CHECK((*back)->header.source == p.header.source && (*back)->header.destination == p.header.destination,
             "addresses differ after a round trip");
  FUZZ_CHECK((*back)->header.tlvs == p.header.tlvs, "TLVs differ after a round trip");
  return 0;
}
