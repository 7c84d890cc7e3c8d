#pragma once
// Access log: one record per connection, in ztunnel's format (reference/ztunnel.md 8.4; ztunnel
// src/proxy/metrics.rs and src/telemetry.rs), target "access".
//
// Plain (default):
//   <time>\t<level>\taccess\t<message>\t<k=v ...>
//   2024-04-11T15:38:42.182974Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.0.33:50676
//     src.workload="shell-5fb6d8c8b6-wd8mg" ... direction="outbound" bytes_sent=67 bytes_recv=490 duration="2ms"
//   As ztunnel prints tracing fields: addresses and byte counts bare, every other value a quoted string
//   (Rust Debug escaping: \" \\ \n \r \t, other control bytes \u{..}). Empty fields are omitted.
// JSON (LOG_FORMAT=json): one object per line, keys in this order:
//   {"level":"info","time":"...","scope":"access","message":"connection complete","src.addr":"...",
//    ...,"bytes_sent":67,"bytes_recv":490,"duration":"2ms"}
//   ztunnel's JSON formatter names the target "scope" (Istio's JSON log schema), not "target".
//
// Events and levels (ztunnel's):
//   Opened    DEBUG  "connection opened"    src/dst fields and direction
//   Complete  INFO   "connection complete"  all fields; ERROR with error="..." when the connection failed
//   Failed    WARN   "connection failed"    early failure before the connection had context:
//                                           src.addr, dst.addr, direction, error
//
// bytes_sent / bytes_recv are from the proxy's side, un-flipped: the metrics' flip for reporter=source
// (istio/istio#32399) is not applied here.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace ambient::telemetry {

enum class Direction : std::uint8_t {
  Inbound,   // "inbound": reporter=destination
  Outbound,  // "outbound": reporter=source
};

enum class AccessEvent : std::uint8_t {
  Opened,    // DEBUG "connection opened"
  Complete,  // INFO "connection complete", ERROR when error is set
  Failed,    // WARN "connection failed" (early: no workload context yet)
};

enum class LogFormat : std::uint8_t { Plain, Json };

struct ConnectionRecord {
  AccessEvent event = AccessEvent::Complete;

  std::string src_addr;       // "ip:port" ("[v6]:port")
  std::string src_workload;   // pod name, else canonical service
  std::string src_namespace;
  std::string src_identity;   // spiffe://..., only when the connection is mTLS
  std::string src_cluster;

  std::string dst_addr;       // L4 peer, e.g. "10.0.0.7:15008"
  std::string dst_hbone_addr; // CONNECT authority when tunnelled
  std::string dst_service;    // service hostname
  std::string dst_workload;
  std::string dst_namespace;
  std::string dst_identity;   // only when the connection is mTLS
  std::string dst_cluster;

  Direction direction = Direction::Outbound;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_recv = 0;
  std::chrono::milliseconds duration{0};  // rendered "<n>ms"
  std::string error;                      // non-empty: the connection failed
};

std::string_view to_string(Direction d) noexcept;

// 2024-04-11T15:38:42.182974Z (UTC, microseconds), as tracing-subscriber's SystemTime.
std::string format_timestamp(std::chrono::system_clock::time_point t);

// The level ztunnel uses for this record.
spdlog::level::level_enum level_of(const ConnectionRecord& rec) noexcept;

// One line, without the trailing newline.
std::string format_plain(const ConnectionRecord& rec, std::chrono::system_clock::time_point now);
std::string format_json(const ConnectionRecord& rec, std::chrono::system_clock::time_point now);

// The process-wide format; initially from LOG_FORMAT ("json" -> Json, anything else Plain).
LogFormat access_log_format() noexcept;
void set_access_log_format(LogFormat format) noexcept;

// The logger emit() writes to. Default, created on first use: logger "access" on stderr (the stream of
// the other logs), pattern "%v" (the line carries its own time and level), registered with spdlog so
// log::set_level and /logging apply to it. set_access_logger replaces it (and registers it under its
// name); call it at start-up before workers emit, or from tests.
std::shared_ptr<spdlog::logger> access_logger();
void set_access_logger(std::shared_ptr<spdlog::logger> logger);

// Formats (only if the logger's level lets it through) and writes one record. Any thread.
void emit(const ConnectionRecord& rec);

}  // namespace ambient::telemetry
