// fuzz_xds_resources: xDS as ztunnel and the waypoint receive it. The gRPC stream's bytes go through
// grpc::FrameDecoder (common/grpc/framing.h); a DeltaDiscoveryResponse of istio.workload.Address or
// istio.security.Authorization resources is applied with xds::apply_delta (common/xds/delta_applier.h) into a
// state::SnapshotBuilder holding a small mesh, then the snapshot is built and queried.
//
// Input: byte 0, then the bytes.
//   bits 0-1  type URL of the response: 0 its own, 1 and 3 Address, 2 Authorization;
//   bit 2     every resource's payload type URL set to the response's (so mutations reach the resource parser);
//   bit 3     framed: the bytes are a gRPC stream whose messages are the responses, applied in order;
//             otherwise the bytes are one response (protobuf);
//   bits 4-6  piece size the FrameDecoder is fed in (kPieces); it runs on the bytes in both modes.
//
// Invariants:
//  - FrameDecoder (max kMaxMessage): messages are within the bound and re-encode (encode_frame) to exactly
//    the bytes consumed; without an error the rest is a partial frame (mid_message); an error is the one the
//    next prefix calls for (compressed flag 1: Unsupported, other flags: Parse, too long: ResourceExhausted)
//    and the decoder stays poisoned with it;
//  - apply_delta: the reply echoes type URL and nonce; a NACK (code 3, a message within kMaxNackMessage plus
//    the "... (N more)" tail) exactly when a resource was rejected; each rejected resource is rejected alone
//    (applied alone to the previous state it is rejected too) and leaves the previous state under its name
//    unless another resource of the response wrote or removed that name; applying the same response twice
//    gives the same state and the same verdicts (idempotent);
//  - the snapshot: every non-host-network workload IP and every VIP finds a resource holding that address;
//    policies_for has no duplicates; endpoints are sorted by uid; service_by_key finds each service.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <spdlog/spdlog.h>

#include "common/grpc/framing.h"
#include "common/state/local_config.h"
#include "common/state/resource.h"
#include "common/state/snapshot_builder.h"
#include "common/xds/delta_applier.h"
#include "test/fuzz/fuzz_protobuf.h"
#include "test/fuzz/fuzz_snapshot.h"
#include "test/fuzz/fuzz_support.h"

namespace {

using namespace ambient;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::Resource;

constexpr std::size_t kMaxMessage = 16384;      // the decoder's bound here (production: 4 MiB / 200 MiB)
constexpr std::size_t kMaxResponses = 8;        // framed mode: responses applied per input
constexpr std::size_t kMaxAloneChecks = 64;     // resources re-applied alone per response
constexpr std::array<std::size_t, 8> kPieces = {1, 2, 5, 7, 64, 1000, 4096, std::size_t(-1)};

// The previous state every input starts from: workloads, services (one with a waypoint), policies.
constexpr std::string_view kMesh = R"(
workloads:
- uid: c//Pod/ns/server
  name: server
  namespace: ns
  serviceAccount: server
  workloadIps: ["10.0.2.1", "fd00::2:1"]
  protocol: HBONE
  services: {"ns/server.ns.svc.cluster.local": {80: 8080}}
  authorizationPolicies: ["ns/allow-client"]
- uid: c//Pod/ns/waypoint
  name: waypoint
  namespace: ns
  serviceAccount: waypoint
  workloadIps: ["10.0.9.9"]
  protocol: HBONE
- uid: c//Pod/ns/host
  name: host
  namespace: ns
  networkMode: HostNetwork
  workloadIps: ["10.0.0.5"]
services:
- name: server
  namespace: ns
  hostname: server.ns.svc.cluster.local
  vips: ["/10.96.0.10", "net1/10.96.0.11"]
  ports: {80: 8080}
  waypoint: {destination: "/10.0.9.9", hboneMtlsPort: 15008}
policies:
- name: allow-client
  namespace: ns
  scope: WorkloadSelector
  action: Allow
  rules:
  - - - principals: [{Exact: spiffe://cluster.local/ns/ns/sa/client}]
- name: deny-9090
  namespace: istio-system
  scope: Global
  action: Deny
  rules:
  - - - destinationPorts: [9090]
)";

state::SnapshotBuilder* g_baseline = nullptr;
state::LocalConfig* g_mesh = nullptr;

std::string deterministic(const google::protobuf::MessageLite& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

// A snapshot's content by key (workload uid, service "ns/hostname", policy "ns/name"), comparable.
struct Content {
  std::map<std::string, std::string> addresses;  // workloads and services
  std::map<std::string, std::string> policies;
  bool operator==(const Content&) const = default;
};

Content content(const state::Snapshot& s) {
  Content c;
  for (const auto& [k, w] : s.workloads()) c.addresses["w:" + k] = deterministic(*w);
  for (const auto& [k, v] : s.services()) c.addresses["s:" + k] = deterministic(*v);
  for (const auto& [k, p] : s.policies()) c.policies[k] = deterministic(*p);
  return c;
}

// What the state holds under an xDS resource name (both kinds for an Address name).
std::vector<std::string> under_name(const Content& c, std::string_view type_url, const std::string& name) {
  std::vector<std::string> out;
  auto add = [&out](const std::map<std::string, std::string>& m, const std::string& key) {
    auto it = m.find(key);
    out.push_back(it == m.end() ? std::string("<absent>") : it->second);
  };
  if (type_url == xds::kAddressType) {
    add(c.addresses, "w:" + name);
    add(c.addresses, "s:" + name);
  } else {
    add(c.policies, name);
  }
  return out;
}

void check_reply(const DeltaDiscoveryResponse& resp, const xds::DeltaOutcome& out) {
  FUZZ_CHECK(out.reply.type_url() == resp.type_url() && out.reply.response_nonce() == resp.nonce(),
             "reply does not echo type URL and nonce");
  FUZZ_CHECK(out.nack() == out.reply.has_error_detail(), "NACK without error_detail or the reverse");
  if (!out.nack()) return;
  FUZZ_CHECK(out.reply.error_detail().code() == 3, "NACK code {}", out.reply.error_detail().code());
  const auto& msg = out.reply.error_detail().message();
  FUZZ_CHECK(!msg.empty() && msg.size() <= xds::kMaxNackMessage + 32, "NACK message of {} bytes", msg.size());
  for (const auto& r : out.rejected) FUZZ_CHECK(r.find(": ") != std::string::npos, "rejection without a reason: {:?}", r);
}

void apply_and_check(const DeltaDiscoveryResponse& resp, state::SnapshotBuilder& builder, xds::Versions& versions) {
  const std::string_view type_url = resp.type_url();
  const bool known = type_url == xds::kAddressType || type_url == xds::kAuthorizationType;
  const state::SnapshotBuilder before_builder = builder;
  const Content before = content(*builder.build());

  const xds::DeltaOutcome first = xds::apply_delta(resp, builder, versions);
  check_reply(resp, first);
  const auto after_first = builder.build();
  const Content after = content(*after_first);
  if (!known) {
    FUZZ_CHECK(first.nack() && first.rejected.size() == 1 && !first.changed(), "unknown type URL {:?} not refused whole",
               type_url);
    FUZZ_CHECK(after == before, "an unknown type URL changed the state");
    return;
  }
  FUZZ_CHECK(first.applied + first.rejected.size() == static_cast<std::size_t>(resp.resources_size()),
             "{} applied + {} rejected of {} resources", first.applied, first.rejected.size(), resp.resources_size());

  // Names the accepted resources and the removals wrote.
  std::set<std::string, std::less<>> written(resp.removed_resources().begin(), resp.removed_resources().end());
  std::vector<bool> rejected_alone(static_cast<std::size_t>(resp.resources_size()), false);
  std::size_t rejected_count = 0;
  if (resp.resources_size() <= static_cast<int>(kMaxAloneChecks)) {
    for (int i = 0; i < resp.resources_size(); ++i) {
      DeltaDiscoveryResponse alone;
      alone.set_type_url(resp.type_url());
      *alone.add_resources() = resp.resources(i);
      state::SnapshotBuilder scratch = before_builder;
      xds::Versions scratch_versions;
      rejected_alone[i] = xds::apply_delta(alone, scratch, scratch_versions).nack();
      if (rejected_alone[i]) ++rejected_count;
      else written.insert(resp.resources(i).name());
    }
    FUZZ_CHECK(rejected_count == first.rejected.size(), "{} resources rejected alone, {} in the response", rejected_count,
               first.rejected.size());
    for (int i = 0; i < resp.resources_size(); ++i) {
      const std::string& name = resp.resources(i).name();
      if (!rejected_alone[i] || written.contains(name)) continue;
      FUZZ_CHECK(under_name(after, type_url, name) == under_name(before, type_url, name),
                 "rejected resource {:?} changed the state under its name", name);
    }
  }

  const xds::DeltaOutcome second = xds::apply_delta(resp, builder, versions);
  FUZZ_CHECK(second.rejected == first.rejected && second.applied == first.applied, "a second apply judged differently");
  FUZZ_CHECK(content(*builder.build()) == after, "applying the same response twice changed the state");
  fuzz::check_snapshot_lookups(*after_first);
}

// The bytes through the gRPC frame decoder in pieces; returns the messages.
std::vector<std::string> decode_frames(std::span<const std::uint8_t> bytes, std::size_t piece) {
  grpc::FrameDecoder dec(kMaxMessage);
  std::vector<std::string> messages;
  std::optional<Error> failed;
  std::size_t fed = 0;
  while (fed < bytes.size() && !failed) {
    auto p = bytes.subspan(fed, std::min(piece, bytes.size() - fed));
    fed += p.size();
    while (!p.empty() && !failed) {
      auto r = dec.next(p);
      if (!r) failed = r.error();
      else if (*r) messages.push_back(std::move(**r));
    }
  }
  std::string again;
  for (const auto& m : messages) {
    FUZZ_CHECK(m.size() <= kMaxMessage, "message of {} bytes past the bound", m.size());
    FUZZ_CHECK(grpc::append_frame(again, m).has_value(), "append_frame failed");
  }
  FUZZ_CHECK(again.size() <= bytes.size() && std::memcmp(again.data(), bytes.data(), again.size()) == 0,
             "re-encoded messages differ from the bytes consumed");
  const std::size_t off = again.size();
  if (!failed) {
    FUZZ_CHECK(dec.mid_message() == (off < bytes.size()), "mid_message {} with {} of {} bytes in whole messages",
               dec.mid_message(), off, bytes.size());
    return messages;
  }
  fuzz::check_error(*failed, {ErrorKind::Unsupported, ErrorKind::Parse, ErrorKind::ResourceExhausted});
  FUZZ_CHECK(off + grpc::kFrameHeaderSize <= bytes.size(), "error before a whole prefix at {}", off);
  const std::uint8_t flag = bytes[off];
  const std::size_t len = std::size_t{bytes[off + 1]} << 24 | std::size_t{bytes[off + 2]} << 16 |
                          std::size_t{bytes[off + 3]} << 8 | bytes[off + 4];
  const ErrorKind want = flag == 1 ? ErrorKind::Unsupported : flag != 0 ? ErrorKind::Parse : ErrorKind::ResourceExhausted;
  FUZZ_CHECK(failed->kind == want && (flag != 0 || len > kMaxMessage), "prefix flag {} length {} gave {}", flag, len,
             to_string(failed->kind));
  std::span<const std::uint8_t> more(bytes.data(), std::min<std::size_t>(bytes.size(), 5));
  auto r = dec.next(more);
  FUZZ_CHECK(!r && r.error().kind == failed->kind && r.error().context == failed->context, "decoder not poisoned");
  return messages;
}

void prepare(DeltaDiscoveryResponse& resp, std::uint8_t flags) {
  switch (flags & 3) {
    case 1: case 3: resp.set_type_url(std::string(xds::kAddressType)); break;
    case 2: resp.set_type_url(std::string(xds::kAuthorizationType)); break;
    default: break;
  }
  if (flags & 4)
    for (auto& r : *resp.mutable_resources()) r.mutable_resource()->set_type_url(resp.type_url());
}

// ---- seeds ----

Resource resource(const std::string& name, std::string_view type_url, const google::protobuf::MessageLite& m,
                  std::string version = "1") {
  Resource r;
  r.set_name(name);
  r.set_version(std::move(version));
  r.mutable_resource()->set_type_url(std::string(type_url));
  r.mutable_resource()->set_value(m.SerializeAsString());
  return r;
}

std::string address_key(const istio::workload::Address& a) {
  return a.has_workload() ? a.workload().uid() : state::service_key(a.service());
}

std::vector<std::pair<std::string, std::string>> seeds() {
  DeltaDiscoveryResponse addresses;
  addresses.set_type_url(std::string(xds::kAddressType));
  addresses.set_nonce("n1");
  addresses.set_system_version_info("v1");
  for (const auto& a : g_mesh->addresses) *addresses.add_resources() = resource(address_key(a), xds::kAddressType, a);
  // A new workload of the server service.
  istio::workload::Address extra;
  auto* w = extra.mutable_workload();
  w->set_uid("c//Pod/ns/server-2");
  w->set_name("server-2");
  w->set_namespace_("ns");
  w->add_addresses(std::string("\x0a\x00\x02\x02", 4));
  (*w->mutable_services())["ns/server.ns.svc.cluster.local"].add_ports()->set_service_port(80);
  *addresses.add_resources() = resource(w->uid(), xds::kAddressType, extra, "2");

  DeltaDiscoveryResponse policies;
  policies.set_type_url(std::string(xds::kAuthorizationType));
  policies.set_nonce("n2");
  for (const auto& p : g_mesh->policies) *policies.add_resources() = resource(state::policy_key(p), xds::kAuthorizationType, p);

  DeltaDiscoveryResponse removal;
  removal.set_type_url(std::string(xds::kAddressType));
  removal.set_nonce("n3");
  removal.add_removed_resources("c//Pod/ns/server");
  removal.add_removed_resources("ns/server.ns.svc.cluster.local");
  removal.add_removed_resources("unknown");

  DeltaDiscoveryResponse mixed = addresses;  // one bad resource among good ones: NACK, the rest applies
  mixed.set_nonce("n4");
  mixed.mutable_resources(0)->set_name("not-the-uid");
  istio::workload::Address bad_ip = extra;
  bad_ip.mutable_workload()->set_addresses(0, "abc");
  *mixed.add_resources() = resource(extra.workload().uid(), xds::kAddressType, bad_ip, "3");

  DeltaDiscoveryResponse wrong_payload = policies;  // an Address payload in an Authorization response
  wrong_payload.set_nonce("n5");
  *wrong_payload.add_resources() = resource("ns/x", xds::kAddressType, extra);

  std::string stream;
  (void)grpc::append_frame(stream, addresses.SerializeAsString());
  (void)grpc::append_frame(stream, policies.SerializeAsString());
  (void)grpc::append_frame(stream, removal.SerializeAsString());

  const std::string raw(1, '\x70');    // own type URL, payload types kept, one piece
  const std::string framed(1, '\x78'); // framed, one piece
  return {
      {"addresses", raw + addresses.SerializeAsString()},
      {"policies", raw + policies.SerializeAsString()},
      {"removal", raw + removal.SerializeAsString()},
      {"mixed_nack", raw + mixed.SerializeAsString()},
      {"wrong_payload_type", raw + wrong_payload.SerializeAsString()},
      {"policies_as_addresses", std::string(1, '\x71') + policies.SerializeAsString()},
      {"framed_stream", framed + stream},
      {"framed_pieces", std::string(1, '\x18') + stream},
      {"framed_compressed", framed + std::string("\x01\x00\x00\x00\x02hi", 7)},
      {"framed_too_long", framed + std::string("\x00\x00\x01\x00\x00", 5)},
  };
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::silence_protobuf_logs();
  spdlog::set_level(spdlog::level::off);  // SnapshotBuilder::build logs each new warning
  auto mesh = state::parse_local_config(kMesh, "mesh.yaml");
  if (!mesh) {
    std::fprintf(stderr, "fuzz_xds_resources: %s\n", mesh.error().context.c_str());
    std::abort();
  }
  g_mesh = new state::LocalConfig(std::move(*mesh));
  g_baseline = new state::SnapshotBuilder;
  if (!state::apply_local_config(*g_mesh, *g_baseline)) std::abort();
  fuzz::write_seeds_if_asked(seeds());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  const std::span<const std::uint8_t> bytes(data + 1, size - 1);
  const auto messages = decode_frames(bytes, kPieces[(flags >> 4) & 7]);

  state::SnapshotBuilder builder = *g_baseline;
  xds::Versions versions;
  DeltaDiscoveryResponse resp;
  if (flags & 8) {
    for (std::size_t i = 0; i < messages.size() && i < kMaxResponses; ++i) {
      if (!resp.ParseFromString(messages[i])) continue;  // the call fails there; later messages still exercise
      prepare(resp, flags);
      apply_and_check(resp, builder, versions);
    }
  } else if (resp.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    prepare(resp, flags);
    apply_and_check(resp, builder, versions);
  }
  return 0;
}
