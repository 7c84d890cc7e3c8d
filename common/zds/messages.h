#pragma once
// ZDS messages (proto/zds.proto, package istio.workload.zds): pure encode/decode and the per-packet rules
// both sides enforce (reference cni-charts.md 4, ztunnel.md 6). No I/O here; fuzzed through decode_request.
//
// Rules for a request packet (agent -> ztunnel):
//  - the bytes must parse as a WorkloadRequest with one payload set; anything else is Parse (the
//    connection is unusable: ztunnel closes it and reconnects);
//  - Add carries exactly one fd; Keep, Del and SnapshotSent carry none. A breach is InvalidArgument: the
//    request is answered with a NACK naming the rule, and every fd that came with it is closed;
//  - Add needs a uid and workload_info; Keep and Del need a uid (InvalidArgument, NACK).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/net/fd.h"
#include "common/zds/seqpacket.h"

namespace ambient::zds {

struct WorkloadInfo {
  std::string name, ns, service_account;
  friend bool operator==(const WorkloadInfo&, const WorkloadInfo&) = default;
};

enum class RequestKind { Add, Keep, Del, SnapshotSent };
std::string_view to_string(RequestKind k);

struct Request {
  RequestKind kind = RequestKind::SnapshotSent;
  std::string uid;
  WorkloadInfo info;    // Add only
  net::UniqueFd netns;  // Add only: the pod's network namespace
};

// ztunnel side.
std::string encode_hello();                     // ZdsHello{V1}
std::string encode_ack(std::string_view error);  // WorkloadResponse{ack{error}}; empty = ACK
Result<Request> decode_request(Packet packet);

// Agent side.
Result<void> decode_hello(std::string_view bytes);  // Parse unless ZdsHello with version V1
std::string encode_add(std::string_view uid, const WorkloadInfo& info);  // send with the netns fd
std::string encode_keep(std::string_view uid);
std::string encode_del(std::string_view uid);
std::string encode_snapshot_sent();
// The ack's error text: "" for an ACK, the reason for a NACK. Parse when the bytes are not a WorkloadResponse
// with an ack.
Result<std::string> decode_ack(std::string_view bytes);

}  // namespace ambient::zds
