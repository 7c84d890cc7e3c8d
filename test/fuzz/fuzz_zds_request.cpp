// fuzz_zds_request: zds::decode_request as ztunnel runs it on every packet from the node agent
// (common/zds/messages.h).
//
// Input: byte 0 picks how many descriptors came with the packet (byte % (kMaxFds + 1), 0..4: what
// SeqPacketSocket::receive can hand over); the rest is the packet's bytes. The descriptors are real
// (dup of /dev/null), owned by the Packet's net::UniqueFds, as receive() would give them.
//
// Invariants:
//  - fds: a successful Add returns the one descriptor it was given (open) and every other descriptor is
//    closed once the call returns; a failed request closes them all; nothing leaks;
//  - Add has exactly one fd, a uid, a namespace and a service account; Keep/Del a uid and no fd;
//    SnapshotSent no fd;
//  - errors are Parse or InvalidArgument with a context;
//  - a decoded request re-encoded by the agent's encoder decodes to the same request.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/zds/messages.h"
#include "common/zds/seqpacket.h"
#include "test/fuzz/fuzz_protobuf.h"
#include "test/fuzz/fuzz_support.h"

namespace {

using namespace ambient;
using namespace ambient::zds;

int g_dev_null = -1;

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

net::UniqueFd fresh_fd() {
  net::UniqueFd fd(::fcntl(g_dev_null, F_DUPFD_CLOEXEC, 0));
  FUZZ_CHECK(fd.valid(), "dup of /dev/null failed: errno {}", errno);
  return fd;
}

// The agent's encoding of `r`, decoded again: must give back the same request.
void check_round_trip(const Request& r) {
  Packet again;
  switch (r.kind) {
    case RequestKind::Add:
      again.bytes = encode_add(r.uid, r.info);
      again.fds.push_back(fresh_fd());
      break;
    case RequestKind::Keep: again.bytes = encode_keep(r.uid); break;
    case RequestKind::Del: again.bytes = encode_del(r.uid); break;
    case RequestKind::SnapshotSent: again.bytes = encode_snapshot_sent(); break;
  }
  auto r2 = decode_request(std::move(again));
  FUZZ_CHECK(r2.has_value(), "re-encoded {} does not decode: {}", to_string(r.kind), r2.error().context);
  FUZZ_CHECK(r2->kind == r.kind && r2->uid == r.uid && r2->info == r.info, "round trip of {} {} changed it",
             to_string(r.kind), r.uid);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::silence_protobuf_logs();
  g_dev_null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (g_dev_null < 0) std::abort();
  fuzz::write_seeds_if_asked({
      // Byte 0: the number of fds that come with the packet.
      {"add_1fd", std::string(1, '\1') + encode_add("5f0c1b2e-8a1d-4c3e-9f00-123456789abc", {"web-0", "shop", "web"})},
      {"add_0fd", std::string(1, '\0') + encode_add("uid-1", {"web-0", "shop", "web"})},
      {"add_2fd", std::string(1, '\2') + encode_add("uid-1", {"", "shop", "web"})},
      {"add_no_sa", std::string(1, '\1') + encode_add("uid-1", {"web-0", "shop", ""})},
      {"keep", std::string(1, '\0') + encode_keep("5f0c1b2e-8a1d-4c3e-9f00-123456789abc")},
      {"keep_1fd", std::string(1, '\1') + encode_keep("uid-2")},
      {"del", std::string(1, '\0') + encode_del("5f0c1b2e-8a1d-4c3e-9f00-123456789abc")},
      {"del_empty_uid", std::string(1, '\0') + encode_del("")},
      {"snapshot_sent", std::string(1, '\0') + encode_snapshot_sent()},
      {"hello_as_request", std::string(1, '\0') + encode_hello()},
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fuzz::FdLeakCheck leaks;
  leaks.tick();
  if (size == 0) return 0;

  const std::size_t fd_count = data[0] % (kMaxFds + 1);
  Packet packet;
  packet.bytes.assign(fuzz::as_text(data + 1, size - 1));
  std::vector<int> given;
  for (std::size_t i = 0; i < fd_count; ++i) {
    packet.fds.push_back(fresh_fd());
    given.push_back(packet.fds.back().get());
  }

  {
    // By value, as the receive loop passes it: the Packet (and the fds it still owns) is destroyed at the
    // end of this statement.
    Result<Request> r = decode_request(std::move(packet));
    const int kept = r.has_value() ? r->netns.get() : -1;
    for (int fd : given) {
      if (fd == kept) continue;
      FUZZ_CHECK(!fd_is_open(fd), "fd {} is still open after decode_request ({} fds given)", fd, fd_count);
    }

    if (!r) {
      fuzz::check_error(r.error(), {ErrorKind::Parse, ErrorKind::InvalidArgument});
    } else {
      switch (r->kind) {
        case RequestKind::Add:
          FUZZ_CHECK(fd_count == 1, "add accepted with {} fds", fd_count);
          FUZZ_CHECK(kept == given.front() && fd_is_open(kept), "add did not return the fd it was given");
          FUZZ_CHECK(!r->uid.empty() && !r->info.ns.empty() && !r->info.service_account.empty(),
                     "add accepted without uid/namespace/service account");
          break;
        case RequestKind::Keep:
        case RequestKind::Del:
          FUZZ_CHECK(!r->uid.empty(), "{} accepted without uid", to_string(r->kind));
          [[fallthrough]];
        case RequestKind::SnapshotSent:
          FUZZ_CHECK(fd_count == 0 && !r->netns.valid(), "{} accepted with {} fds", to_string(r->kind), fd_count);
          break;
      }
      check_round_trip(*r);
    }
  }
  // The returned netns fd (if any) died with the Request.
  for (int fd : given) FUZZ_CHECK(!fd_is_open(fd), "fd {} is still open after the request was destroyed", fd);
  return 0;
}
