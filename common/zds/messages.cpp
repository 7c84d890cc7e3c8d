#include "common/zds/messages.h"

#include "proto/zds.pb.h"

namespace ambient::zds {

namespace pb = istio::workload::zds;

std::string_view to_string(RequestKind k) {
  switch (k) {
    case RequestKind::Add: return "add";
    case RequestKind::Keep: return "keep";
    case RequestKind::Del: return "del";
    case RequestKind::SnapshotSent: return "snapshot_sent";
  }
  return "?";
}

std::string encode_hello() {
  pb::ZdsHello h;
  h.set_version(pb::V1);
  return h.SerializeAsString();
}

std::string encode_ack(std::string_view error) {
  pb::WorkloadResponse r;
  r.mutable_ack()->set_error(std::string(error));
  return r.SerializeAsString();
}

Result<Request> decode_request(Packet packet) {
  pb::WorkloadRequest m;
  if (!m.ParseFromString(packet.bytes))
    return errorf(ErrorKind::Parse, "zds request of {} bytes is not a WorkloadRequest protobuf", packet.bytes.size());
  const std::size_t fds = packet.fds.size();
  Request r;
  switch (m.payload_case()) {
    case pb::WorkloadRequest::kAdd: {
      r.kind = RequestKind::Add;
      r.uid = m.add().uid();
      if (fds != 1)
        return errorf(ErrorKind::InvalidArgument, "add {}: must carry exactly one netns fd, got {}", r.uid, fds);
      if (r.uid.empty()) return errorf(ErrorKind::InvalidArgument, "add: empty uid");
      if (!m.add().has_workload_info())
        return errorf(ErrorKind::InvalidArgument, "add {}: no workload_info (protocol error)", r.uid);
      const auto& wi = m.add().workload_info();
      r.info = WorkloadInfo{wi.name(), wi.namespace_(), wi.service_account()};
      if (r.info.ns.empty() || r.info.service_account.empty())
        return errorf(ErrorKind::InvalidArgument, "add {}: workload_info needs namespace and service_account", r.uid);
      r.netns = std::move(packet.fds.front());
      return r;
    }
    case pb::WorkloadRequest::kKeep:
      r.kind = RequestKind::Keep;
      r.uid = m.keep().uid();
      break;
    case pb::WorkloadRequest::kDel:
      r.kind = RequestKind::Del;
      r.uid = m.del().uid();
      break;
    case pb::WorkloadRequest::kSnapshotSent:
      r.kind = RequestKind::SnapshotSent;
      break;
    case pb::WorkloadRequest::PAYLOAD_NOT_SET:
      return errorf(ErrorKind::Parse, "zds request of {} bytes has no payload (unknown message?)", packet.bytes.size());
  }
  if (fds != 0) return errorf(ErrorKind::InvalidArgument, "{} {}: must carry no fd, got {}", to_string(r.kind), r.uid, fds);
  if (r.kind != RequestKind::SnapshotSent && r.uid.empty())
    return errorf(ErrorKind::InvalidArgument, "{}: empty uid", to_string(r.kind));
  return r;
}

Result<void> decode_hello(std::string_view bytes) {
  pb::ZdsHello h;
  if (!h.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return errorf(ErrorKind::Parse, "zds hello of {} bytes is not a ZdsHello protobuf", bytes.size());
  if (h.version() != pb::V1) return errorf(ErrorKind::Parse, "zds hello: unsupported version {}", static_cast<int>(h.version()));
  return ok();
}

std::string encode_add(std::string_view uid, const WorkloadInfo& info) {
  pb::WorkloadRequest m;
  auto* a = m.mutable_add();
  a->set_uid(std::string(uid));
  a->mutable_workload_info()->set_name(info.name);
  a->mutable_workload_info()->set_namespace_(info.ns);
  a->mutable_workload_info()->set_service_account(info.service_account);
  return m.SerializeAsString();
}

std::string encode_keep(std::string_view uid) {
  pb::WorkloadRequest m;
  m.mutable_keep()->set_uid(std::string(uid));
  return m.SerializeAsString();
}

std::string encode_del(std::string_view uid) {
  pb::WorkloadRequest m;
  m.mutable_del()->set_uid(std::string(uid));
  return m.SerializeAsString();
}

std::string encode_snapshot_sent() {
  pb::WorkloadRequest m;
  m.mutable_snapshot_sent();
  return m.SerializeAsString();
}

Result<std::string> decode_ack(std::string_view bytes) {
  pb::WorkloadResponse r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) || !r.has_ack())
    return errorf(ErrorKind::Parse, "zds response of {} bytes is not a WorkloadResponse with an ack", bytes.size());
  return r.ack().error();
}

}  // namespace ambient::zds
