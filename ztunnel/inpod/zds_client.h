#pragma once
// ZdsClient: ztunnel's side of ZDS (reference ztunnel.md 6, cni-charts.md 4). It connects to the node agent's
// SOCK_SEQPACKET socket (INPOD_UDS), sends ZdsHello{V1}, then answers every request with exactly one Ack
// (empty error) or NACK (the reason) and never sends anything unsolicited.
//
// Per connection (the snapshot state is reset on each new one):
//  - Add (with exactly one netns fd) and Keep before SnapshotSent mark the uid as seen; SnapshotSent hands the
//    seen set to PodWorkloads::reconcile, which drains every other pod proxy; then Add/Del are incremental.
//  - Keep after SnapshotSent and a second SnapshotSent are protocol errors: NACKed, the connection stays.
//  - A request that breaks the fd or field rules (common/zds/messages.h) is NACKed with the rule; its fds are
//    closed. Bytes that are not a WorkloadRequest, or a truncated packet, close the connection (reconnect).
//  - Connect failures and lost connections retry with backoff 10 ms doubling to 15 s, for ever; pod proxies
//    keep running meanwhile (the agent restarting must not cut traffic).
#include <chrono>
#include <cstdint>
#include <set>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/base/result.h"
#include "common/net/fd.h"
#include "common/zds/messages.h"
#include "common/zds/seqpacket.h"

namespace ambient::ztunnel {

// What ZDS drives: the set of pod proxies. All calls run on the client's executor.
class PodWorkloads {
 public:
  virtual ~PodWorkloads() = default;
  // Start (or keep, or replace) the proxy of pod `uid`. An error is NACKed with its text.
  virtual boost::asio::awaitable<Result<void>> add(std::string uid, zds::WorkloadInfo info, net::UniqueFd netns) = 0;
  // Immediate drain of pod `uid` (unknown uids are fine).
  virtual boost::asio::awaitable<void> remove(std::string uid) = 0;
  // End of a snapshot replay: drain every pod proxy whose uid is not in `seen`.
  virtual boost::asio::awaitable<void> reconcile(std::set<std::string> seen) = 0;
  // Connection state for readiness: connected, and whether this connection's snapshot is complete.
  virtual void connection_changed(bool connected, bool snapshot_done) = 0;
};

struct ZdsClientOptions {
  std::string path = "/var/run/ztunnel/ztunnel.sock";  // INPOD_UDS
  std::chrono::milliseconds backoff_initial{10};
  std::chrono::milliseconds backoff_max{15'000};
};

struct ZdsClientStats {
  std::uint64_t connects = 0;   // connections on which the hello was sent
  std::uint64_t requests = 0;
  std::uint64_t acks = 0;
  std::uint64_t nacks = 0;
  bool connected = false;
  bool snapshot_done = false;
  std::string last_error;       // the last connection-level error or NACK reason
};

class ZdsClient {
 public:
  ZdsClient(boost::asio::any_io_executor ex, ZdsClientOptions options, PodWorkloads& pods);
  ~ZdsClient();
  void start();
  void stop();  // closes the connection; pod proxies are not touched
  const ZdsClientStats& stats() const { return stats_; }

 private:
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<Result<void>> serve(zds::SeqPacketSocket& socket);

  boost::asio::any_io_executor ex_;
  ZdsClientOptions options_;
  PodWorkloads& pods_;
  ZdsClientStats stats_;
  boost::asio::steady_timer backoff_timer_;
  zds::SeqPacketSocket* socket_ = nullptr;  // the live connection, for stop()
  bool stopped_ = false;
  bool running_ = false;
};

}  // namespace ambient::ztunnel
