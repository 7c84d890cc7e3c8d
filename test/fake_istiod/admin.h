#pragma once
// fake-istiod's plain-HTTP admin endpoint (no TLS; bind it to loopback), for runtime fault injection:
//   GET  /status                 200, JSON: stream/push/ACK/NACK/CSR counters, last NACK, faults in force
//   POST /fault?name=value[&..]  applies each fault (server_state.h), 200 with the new /status JSON;
//                                400 {"error": "..."} on an unknown fault or a bad value (earlier ones
//                                in the same query stay applied)
//   anything else                404 (405 for a known path with the wrong method)
// One blocking thread serves one connection at a time, HTTP/1.x, Connection: close; request heads over
// 8 KiB, or not complete within 2 s, are answered 400 / dropped.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "common/base/result.h"

namespace fake_istiod {

struct AdminHandlers {
  std::function<std::string()> status;  // the /status body
  std::function<std::string()> answer_latencies;  // the /answer-latencies body (JSON array, microseconds)
  // Applies one fault; the error's context is the 400 message.
  std::function<ambient::Result<void>(std::string_view name, std::string_view value)> fault;
};

class AdminServer {
 public:
  // Binds host:port (port 0: any) and starts serving.
  static ambient::Result<std::unique_ptr<AdminServer>> start(const std::string& host, std::uint16_t port,
                                                             AdminHandlers handlers);
  ~AdminServer();  // stops accepting and joins the thread
  std::uint16_t port() const { return port_; }

 private:
  AdminServer(int fd, std::uint16_t port, AdminHandlers handlers);
  void serve();
  void handle(int fd);

  int fd_;
  std::uint16_t port_;
  AdminHandlers handlers_;
  std::thread thread_;
};

// "HOST:PORT" (IPv4 literal or "[v6]", or "localhost") split; InvalidArgument with the flag name otherwise.
ambient::Result<std::pair<std::string, std::uint16_t>> split_host_port(std::string_view flag, std::string_view value);

}  // namespace fake_istiod
