// Golden bytes for proto/status.proto (google.rpc.Status), the NACK payload of Delta ADS.
#include <doctest/doctest.h>

#include <string>

#include "proto/status.pb.h"
#include "test/proto/wire.h"

using wire::len;
using wire::num;

TEST_SUITE("proto/status") {
  TEST_CASE("Status{code = 1, message = 2, details = 3}") {
    google::rpc::Status st;
    st.set_code(3);
    st.set_message("ns1/uid-1: invalid address");
    st.add_details()->set_type_url("type.googleapis.com/google.protobuf.Empty");
    const std::string expected = num(1, 3) + len(2, "ns1/uid-1: invalid address") +
                                 len(3, len(1, "type.googleapis.com/google.protobuf.Empty"));
    CHECK(wire::serialize(st) == expected);

    google::rpc::Status parsed;
    REQUIRE(parsed.ParseFromString(expected));
    CHECK(parsed.code() == 3);
    CHECK(parsed.message() == "ns1/uid-1: invalid address");
    REQUIRE(parsed.details_size() == 1);
    CHECK(parsed.details(0).type_url() == "type.googleapis.com/google.protobuf.Empty");
  }
}
