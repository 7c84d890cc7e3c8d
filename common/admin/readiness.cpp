#include "common/admin/readiness.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace ambient::admin {

Readiness::Readiness() : start_(std::chrono::steady_clock::now()) {}

Readiness::Token Readiness::register_task(std::string name) {
  std::lock_guard lock(mu_);
  const std::uint64_t id = next_id_++;
  pending_.emplace(id, std::move(name));
  return Token{id};
}

void Readiness::mark_ready(Token token) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(token.id);
  if (it == pending_.end()) return;  // already marked, or never registered
  const std::string name = std::move(it->second);
  pending_.erase(it);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start_);
  if (pending_.empty()) {
    spdlog::info("Task '{}' complete ({}ms), marking server ready", name, ms.count());
  } else {
    spdlog::info("Task '{}' complete ({}ms), still awaiting {} tasks", name, ms.count(), pending_.size());
  }
}

bool Readiness::ready() const {
  std::lock_guard lock(mu_);
  return pending_.empty();
}

std::vector<std::string> Readiness::pending() const {
  std::vector<std::string> out;
  {
    std::lock_guard lock(mu_);
    out.reserve(pending_.size());
    for (const auto& [id, name] : pending_) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Response Readiness::handle_ready(const Request&) const {
  const auto names = pending();
  if (names.empty()) return Response::text(200, "ready\n");
  return Response::text(500, fmt::format("not ready, pending: {}\n", fmt::join(names, ", ")));
}

void add_readiness_route(HttpServer& server, const Readiness& readiness) {
  server.route("GET", "/healthz/ready", [&readiness](const Request& req) { return readiness.handle_ready(req); });
}

}  // namespace ambient::admin
