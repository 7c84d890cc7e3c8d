#pragma once
// Readiness: the tasks that must finish before the process reports ready on :15021/healthz/ready
// (ztunnel: src/readiness.rs; its tasks are "state manager", "proxy", "dns proxy",
// "workload proxy manager").
//
//   auto t = ready.register_task("state manager");   // pending from now on
//   ...                                              // first config applied
//   ready.mark_ready(t);                             // idempotent; the last one logs "marking server ready"
//
// Thread-safe (a mutex): tasks are registered and marked rarely, from any thread; never on the data path.
// Once ready, the process stays ready unless a new task is registered.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/admin/http_server.h"

namespace ambient::admin {

class Readiness {
 public:
  struct Token {
    std::uint64_t id = 0;  // 0: a token that was never registered
  };

  Readiness();

  Token register_task(std::string name);
  void mark_ready(Token token);

  bool ready() const;
  std::vector<std::string> pending() const;  // sorted; a name registered twice appears twice

  // GET /healthz/ready: 200 "ready\n", or 500 "not ready, pending: a, b\n" (ztunnel's bodies).
  Response handle_ready(const Request& req) const;

 private:
  mutable std::mutex mu_;
  std::map<std::uint64_t, std::string> pending_;  // by token id
  std::uint64_t next_id_ = 1;
  std::chrono::steady_clock::time_point start_;
};

// Routes GET /healthz/ready on `server` to `readiness` (which must outlive the server).
void add_readiness_route(HttpServer& server, const Readiness& readiness);

}  // namespace ambient::admin
