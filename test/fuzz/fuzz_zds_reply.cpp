// fuzz_zds_reply: what the node agent decodes from ztunnel (common/zds/messages.h): the ZdsHello that
// opens a connection (decode_hello) and the WorkloadResponse ack of each request (decode_ack). Both run
// on every input: the bytes are one packet, whichever the agent expects.
//
// Invariants: errors are Parse with a context; an accepted ack re-encoded by ztunnel's encoder
// (encode_ack) decodes to the same text.
#include <cstdint>

#include "common/zds/messages.h"
#include "test/fuzz/fuzz_protobuf.h"
#include "test/fuzz/fuzz_support.h"

namespace {

using namespace ambient;
using namespace ambient::zds;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::silence_protobuf_logs();
  fuzz::write_seeds_if_asked({
      {"hello", encode_hello()},
      {"ack", encode_ack("")},
      {"nack", encode_ack("add 5f0c: must carry exactly one netns fd, got 2")},
      {"request_as_reply", encode_snapshot_sent()},
  });
  FUZZ_CHECK(decode_hello(encode_hello()).has_value(), "ztunnel's own hello does not decode");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = fuzz::as_text(data, size);

  if (auto hello = decode_hello(bytes); !hello) fuzz::check_error(hello.error(), {ErrorKind::Parse});

  auto ack = decode_ack(bytes);
  if (!ack) {
    fuzz::check_error(ack.error(), {ErrorKind::Parse});
  } else {
    auto again = decode_ack(encode_ack(*ack));
    FUZZ_CHECK(again.has_value() && *again == *ack, "ack '{}' does not survive encode_ack/decode_ack", *ack);
  }
  return 0;
}
