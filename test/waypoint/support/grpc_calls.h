#pragma once
// gRPC calls the waypoint tests make through the mesh (our gRPC client over an h2::Session to a grpc-test-server).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "common/base/result.h"
#include "common/grpc/client.h"
#include "common/h2/session.h"
#include "test/common/grpc/grpc_fixture.h"

namespace ambient::test {

// A BidiStream call played as ping-pong: `n` requests "m0".."m<n-1>", each reply read (and checked to echo its
// request) before the next request goes out; then the half-close, no further reply, and OK in the trailers.
// Returns the replies' sequence numbers.
inline boost::asio::awaitable<Result<std::vector<std::int64_t>>> bidi_ping_pong(std::shared_ptr<h2::Session> session, int n,
                                                                                grpc::CallOptions options) {
  auto call = co_await grpc::start_call(session, "/ambient.test.Echo/BidiStream", options);
  if (!call) co_return std::move(call).error();
  std::vector<std::int64_t> seqs;
  for (int i = 0; i < n; ++i) {
    EchoRequest req;
    req.set_message("m" + std::to_string(i));
    AMBIENT_CO_TRY(co_await grpc::send_message(*call, req));
    auto r = co_await grpc::recv_message<EchoReply>(*call);
    if (!r) co_return std::move(r).error();
    if (!*r) co_return errorf(ErrorKind::Closed, "stream ended early");
    if ((*r)->message() != "m" + std::to_string(i)) co_return errorf(ErrorKind::Internal, "reply {} is {}", i, (*r)->message());
    seqs.push_back((*r)->sequence());
  }
  AMBIENT_CO_TRY(co_await call->close_send());
  auto end = co_await grpc::recv_message<EchoReply>(*call);
  if (!end) co_return std::move(end).error();
  if (*end) co_return errorf(ErrorKind::Internal, "a reply after the half-close");
  if (call->status().code != 0) co_return errorf(ErrorKind::GrpcStatus, "status {}", call->status().code);
  co_return seqs;
}

}  // namespace ambient::test
