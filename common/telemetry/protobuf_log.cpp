#include "common/telemetry/protobuf_log.h"

#include <atomic>
#include <chrono>
#include <string>

#include <spdlog/spdlog.h>

namespace ambient::telemetry {

namespace {

std::atomic<std::int64_t> window_second{0};
std::atomic<int> in_window{0};
std::atomic<int> dropped{0};

void handler(google::protobuf::LogLevel level, const char* filename, int line, const std::string& message) {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  auto window = window_second.load(std::memory_order_relaxed);
  if (now != window && window_second.compare_exchange_strong(window, now, std::memory_order_relaxed)) {
    in_window.store(0, std::memory_order_relaxed);
    if (const int n = dropped.exchange(0, std::memory_order_relaxed); n > 0)
      spdlog::warn("protobuf: {} more messages dropped in the last second (rate limit {}/s)", n, kProtobufLogMaxPerSecond);
  }
  if (in_window.fetch_add(1, std::memory_order_relaxed) >= kProtobufLogMaxPerSecond) {
    dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto lvl = level >= google::protobuf::LOGLEVEL_ERROR     ? spdlog::level::err
                   : level == google::protobuf::LOGLEVEL_WARNING ? spdlog::level::warn
                                                                 : spdlog::level::info;
  spdlog::log(lvl, "protobuf: {} ({}:{})", message, filename, line);
}

}  // namespace

google::protobuf::LogHandler* route_protobuf_logs() { return google::protobuf::SetLogHandler(&handler); }

}  // namespace ambient::telemetry
