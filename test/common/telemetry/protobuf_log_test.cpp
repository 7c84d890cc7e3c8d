// Protobuf's log lines go through spdlog, rate-limited: a peer sending bad strings cannot flood the log.
#include <doctest/doctest.h>

#include <sstream>

#include <google/protobuf/stubs/logging.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "common/telemetry/protobuf_log.h"

namespace {

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_SUITE("telemetry/protobuf_log") {
  TEST_CASE("protobuf errors reach spdlog, at most the limit per second") {
    std::ostringstream out;
    auto previous = spdlog::default_logger();
    auto logger = std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
    spdlog::set_default_logger(logger);
    auto* original = ambient::telemetry::route_protobuf_logs();
    for (int i = 0; i < 50; ++i) GOOGLE_LOG(ERROR) << "String field contains invalid UTF-8 data " << i;
    const std::string first = out.str();
    google::protobuf::SetLogHandler(original);
    spdlog::set_default_logger(previous);
    CHECK(count(first, "protobuf: String field contains invalid UTF-8 data") >= 1);
    CHECK(count(first, "protobuf: String field contains invalid UTF-8 data") <= 2 * ambient::telemetry::kProtobufLogMaxPerSecond);
  }
}
