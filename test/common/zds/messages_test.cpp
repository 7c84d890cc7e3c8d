#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/zds/messages.h"
#include "proto/zds.pb.h"
#include "test/support/paths.h"

using namespace ambient;
using namespace ambient::zds;
namespace pb = istio::workload::zds;

namespace {

net::UniqueFd open_dev_null() {
  net::UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  REQUIRE(fd.valid());
  return fd;
}

Packet packet_with_fds(std::string bytes, int fd_count) {
  Packet p;
  p.bytes = std::move(bytes);
  for (int i = 0; i < fd_count; ++i) p.fds.push_back(open_dev_null());
  return p;
}

std::string request_bytes(const pb::WorkloadRequest& m) { return m.SerializeAsString(); }

const WorkloadInfo kInfo{"web-0", "shop", "web-sa"};

}  // namespace

TEST_SUITE("common/zds/messages") {
  TEST_CASE("round trips: every request the agent encodes decodes to the same request") {
    SUBCASE("add with its netns fd") {
      auto r = decode_request(packet_with_fds(encode_add("uid-1", kInfo), 1));
      REQUIRE(r);
      CHECK(r->kind == RequestKind::Add);
      CHECK(r->uid == "uid-1");
      CHECK(r->info == kInfo);
      CHECK(r->netns.valid());
    }
    SUBCASE("keep") {
      auto r = decode_request(packet_with_fds(encode_keep("uid-2"), 0));
      REQUIRE(r);
      CHECK(r->kind == RequestKind::Keep);
      CHECK(r->uid == "uid-2");
      CHECK_FALSE(r->netns.valid());
    }
    SUBCASE("del (uid is field 2)") {
      const std::string bytes = encode_del("uid-3");
      pb::WorkloadRequest m;
      REQUIRE(m.ParseFromString(bytes));
      CHECK(m.del().uid() == "uid-3");
      auto r = decode_request(packet_with_fds(bytes, 0));
      REQUIRE(r);
      CHECK(r->kind == RequestKind::Del);
      CHECK(r->uid == "uid-3");
    }
    SUBCASE("snapshot_sent is not an empty packet (an empty one would read as EOF)") {
      const std::string bytes = encode_snapshot_sent();
      CHECK_FALSE(bytes.empty());
      auto r = decode_request(packet_with_fds(bytes, 0));
      REQUIRE(r);
      CHECK(r->kind == RequestKind::SnapshotSent);
    }
    SUBCASE("hello") {
      CHECK(decode_hello(encode_hello()));
    }
    SUBCASE("ack and nack") {
      CHECK_FALSE(encode_ack("").empty());
      auto ack = decode_ack(encode_ack(""));
      REQUIRE(ack);
      CHECK(ack->empty());
      auto nack = decode_ack(encode_ack("failure to start proxy"));
      REQUIRE(nack);
      CHECK(*nack == "failure to start proxy");
    }
  }

  TEST_CASE("decode_request rules: refused packets give the right kind and close every fd they carried") {
    pb::WorkloadRequest add_without_info;
    add_without_info.mutable_add()->set_uid("uid-1");
    pb::WorkloadRequest add_without_ns;
    add_without_ns.mutable_add()->set_uid("uid-1");
    add_without_ns.mutable_add()->mutable_workload_info()->set_name("web-0");
    add_without_ns.mutable_add()->mutable_workload_info()->set_service_account("web-sa");

    struct Row {
      const char* name;
      std::string bytes;
      int fds;
      ErrorKind kind;
    };
    const std::vector<Row> rows = {
        {"not a protobuf (truncated varint)", std::string("\xff\xff", 2), 0, ErrorKind::Parse},
        {"not a protobuf (length past the end)", std::string("\x0a\x05" "ab", 4), 0, ErrorKind::Parse},
        {"not a protobuf, with an fd", std::string("\xff\xff", 2), 1, ErrorKind::Parse},
        {"empty payload", "", 0, ErrorKind::Parse},
        {"empty payload with an fd", "", 1, ErrorKind::Parse},
        {"add without fd", encode_add("uid-1", kInfo), 0, ErrorKind::InvalidArgument},
        {"add with two fds", encode_add("uid-1", kInfo), 2, ErrorKind::InvalidArgument},
        {"add with four fds", encode_add("uid-1", kInfo), 4, ErrorKind::InvalidArgument},
        {"add with empty uid", encode_add("", kInfo), 1, ErrorKind::InvalidArgument},
        {"add without workload_info", request_bytes(add_without_info), 1, ErrorKind::InvalidArgument},
        {"add without namespace", request_bytes(add_without_ns), 1, ErrorKind::InvalidArgument},
        {"keep with an fd", encode_keep("uid-1"), 1, ErrorKind::InvalidArgument},
        {"keep with empty uid", encode_keep(""), 0, ErrorKind::InvalidArgument},
        {"del with an fd", encode_del("uid-1"), 1, ErrorKind::InvalidArgument},
        {"del with empty uid", encode_del(""), 0, ErrorKind::InvalidArgument},
        {"snapshot_sent with an fd", encode_snapshot_sent(), 1, ErrorKind::InvalidArgument},
        {"snapshot_sent with two fds", encode_snapshot_sent(), 2, ErrorKind::InvalidArgument},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      const int before = test::open_fd_count();
      {
        auto r = decode_request(packet_with_fds(row.bytes, row.fds));
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == row.kind);
        CHECK_FALSE(r.error().context.empty());
      }
      CHECK(test::open_fd_count() == before);
    }
  }

  TEST_CASE("decode_request: an accepted add owns its fd; nothing else stays open") {
    const int before = test::open_fd_count();
    {
      auto r = decode_request(packet_with_fds(encode_add("uid-1", kInfo), 1));
      REQUIRE(r);
      CHECK(test::open_fd_count() == before + 1);
    }
    CHECK(test::open_fd_count() == before);
  }

  TEST_CASE("decode_hello and decode_ack refuse what is not theirs") {
    pb::ZdsHello not_used;  // version NOT_USED (0): serializes to nothing
    pb::ZdsHello future;
    future.set_version(static_cast<pb::Version>(2));
    struct Row {
      const char* name;
      std::string bytes;
    };
    const std::vector<Row> hellos = {
        {"garbage", std::string("\xff\xff", 2)},
        {"version NOT_USED", not_used.SerializeAsString()},
        {"unknown version 2", future.SerializeAsString()},
    };
    for (const auto& row : hellos) {
      CAPTURE(row.name);
      auto r = decode_hello(row.bytes);
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::Parse);
    }
    const std::vector<Row> acks = {
        {"garbage", std::string("\xff\xff", 2)},
        {"response without ack", ""},
        {"a request is not a response", encode_keep("uid-1")},
    };
    for (const auto& row : acks) {
      CAPTURE(row.name);
      auto r = decode_ack(row.bytes);
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::Parse);
    }
  }

  TEST_CASE("largest Kubernetes names still fit one packet") {
    // name and service account <= 253, namespace <= 63, uid 36.
    const WorkloadInfo big{std::string(253, 'n'), std::string(63, 's'), std::string(253, 'a')};
    const std::string bytes = encode_add(std::string(36, 'u'), big);
    CHECK(bytes.size() <= kMaxPacket);
    auto r = decode_request(packet_with_fds(bytes, 1));
    REQUIRE(r);
    CHECK(r->info == big);
  }
}
