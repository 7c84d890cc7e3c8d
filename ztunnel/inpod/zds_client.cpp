#include "ztunnel/inpod/zds_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace ambient::ztunnel {

namespace asio = boost::asio;

ZdsClient::ZdsClient(asio::any_io_executor ex, ZdsClientOptions options, PodWorkloads& pods)
    : ex_(ex), options_(std::move(options)), pods_(pods), backoff_timer_(ex) {}

ZdsClient::~ZdsClient() { stop(); }

void ZdsClient::start() {
  if (running_) return;
  running_ = true;
  asio::co_spawn(ex_, run(), asio::detached);
}

void ZdsClient::stop() {
  stopped_ = true;
  backoff_timer_.cancel();
  if (socket_ != nullptr) socket_->close();
}

asio::awaitable<void> ZdsClient::run() {
  auto backoff = options_.backoff_initial;
  while (!stopped_) {
    auto socket = zds::SeqPacketSocket::connect(ex_, options_.path);
    if (socket) {
      socket_ = &*socket;
      auto r = co_await serve(*socket);
      socket_ = nullptr;
      socket->close();
      const bool was_ready = stats_.snapshot_done;
      stats_.connected = false;
      stats_.snapshot_done = false;
      pods_.connection_changed(false, false);
      if (stopped_) break;
      stats_.last_error = r ? "node agent closed the connection" : r.error().message();
      spdlog::warn("zds: connection to the node agent at {} lost: {}", options_.path, stats_.last_error);
      if (was_ready) backoff = options_.backoff_initial;  // a working connection resets the backoff
    } else {
      stats_.last_error = socket.error().message();
      spdlog::warn("zds: cannot connect to the node agent at {}: {} (is the node agent healthy?); retrying in {} ms",
                   options_.path, stats_.last_error, backoff.count());
    }
    backoff_timer_.expires_after(backoff);
    co_await backoff_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
  running_ = false;
}

asio::awaitable<Result<void>> ZdsClient::serve(zds::SeqPacketSocket& socket) {
  const std::string hello = zds::encode_hello();
  if (auto r = co_await socket.send(hello); !r) co_return r;
  ++stats_.connects;
  stats_.connected = true;
  pods_.connection_changed(true, false);
  spdlog::info("zds: connected to the node agent at {}", options_.path);
  std::set<std::string> seen;  // uids added or kept during this connection's snapshot
  bool snapshot_done = false;
  for (;;) {
    auto packet = co_await socket.receive();
    if (!packet) co_return std::move(packet).error();
    auto request = zds::decode_request(std::move(*packet));
    if (!request && request.error().kind == ErrorKind::Parse) co_return std::move(request).error();
    ++stats_.requests;
    std::string nack;
    if (!request) {
      nack = request.error().context;
    } else {
      switch (request->kind) {
        case zds::RequestKind::Add: {
          if (!snapshot_done) seen.insert(request->uid);
          const std::string uid = request->uid;
          auto r = co_await pods_.add(uid, request->info, std::move(request->netns));
          if (!r) nack = r.error().context;
          break;
        }
        case zds::RequestKind::Keep:
          if (snapshot_done) nack = "protocol error: keep " + request->uid + " after snapshot_sent";
          else seen.insert(request->uid);
          break;
        case zds::RequestKind::Del:
          seen.erase(request->uid);
          co_await pods_.remove(request->uid);
          break;
        case zds::RequestKind::SnapshotSent:
          if (snapshot_done) {
            nack = "protocol error: a second snapshot_sent on one connection";
            break;
          }
          snapshot_done = true;
          co_await pods_.reconcile(std::move(seen));
          seen.clear();
          stats_.snapshot_done = true;
          pods_.connection_changed(true, true);
          break;
      }
    }
    if (!nack.empty()) {
      ++stats_.nacks;
      stats_.last_error = nack;
      spdlog::warn("zds: NACK: {}", nack);
    } else {
      ++stats_.acks;
    }
    const std::string ack = zds::encode_ack(nack);
    if (auto r = co_await socket.send(ack); !r) co_return r;
  }
}

}  // namespace ambient::ztunnel
