#pragma once
// Protobuf's own log lines (e.g. "String field ... contains invalid UTF-8 data" for every bad string a peer
// sends) go to stderr outside our logger. route_protobuf_logs() sends them to spdlog instead, at most
// kMaxPerSecond lines a second; the rest are counted and reported once a second, so a peer cannot flood the log.
// Call once at start-up (any thread may log afterwards). Returns the handler it replaced.
#include <google/protobuf/stubs/logging.h>

namespace ambient::telemetry {

inline constexpr int kProtobufLogMaxPerSecond = 10;

google::protobuf::LogHandler* route_protobuf_logs();

}  // namespace ambient::telemetry
