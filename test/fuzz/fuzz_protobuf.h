#pragma once
// Protobuf's own logging in fuzz targets. The runtime writes "[libprotobuf ERROR ...] String field contains
// invalid UTF-8 data" to stderr for every such input (most mutated inputs): gigabytes of log in a long
// run and a much slower fuzzer. Dropped here; FATAL still aborts after the handler returns, so a
// protobuf CHECK failure remains a crash.
#include <string>

#include <google/protobuf/stubs/logging.h>

namespace ambient::fuzz {

inline void silence_protobuf_logs() {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
}

}  // namespace ambient::fuzz
