#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <string>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "common/telemetry/access_log.h"

using namespace ambient::telemetry;
using namespace std::chrono;

namespace {

// 2024-04-11T15:38:42.182974Z
const system_clock::time_point kTime =
    sys_days{year{2024} / April / 11} + hours{15} + minutes{38} + seconds{42} + microseconds{182974};

// The record of Istio's documentation example (sleep -> echo through the local ztunnel, outbound).
ConnectionRecord example() {
  ConnectionRecord r;
  r.src_addr = "10.244.0.33:50676";
  r.src_workload = "shell-5fb6d8c8b6-wd8mg";
  r.src_namespace = "default";
  r.src_identity = "spiffe://cluster.local/ns/default/sa/default";
  r.dst_addr = "10.244.0.34:15008";
  r.dst_hbone_addr = "10.96.99.218:80";
  r.dst_service = "echo-service.default.svc.cluster.local";
  r.dst_workload = "echo-service-7bdb4f9b8-7n5cq";
  r.dst_namespace = "default";
  r.dst_identity = "spiffe://cluster.local/ns/default/sa/default";
  r.direction = Direction::Outbound;
  r.bytes_sent = 67;
  r.bytes_recv = 490;
  r.duration = milliseconds{2};
  return r;
}

// Installs an "access" logger that writes into `out`, restores the default format on exit.
struct CaptureAccessLog {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> logger;
  CaptureAccessLog() {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    logger = std::make_shared<spdlog::logger>("access", sink);
    logger->set_pattern("%v");
    logger->set_level(spdlog::level::info);
    set_access_logger(logger);
  }
  ~CaptureAccessLog() { set_access_log_format(LogFormat::Plain); }
};

}  // namespace

TEST_SUITE("common/telemetry/access_log") {
  TEST_CASE("timestamps are UTC with microseconds") {
    CHECK(format_timestamp(kTime) == "2024-04-11T15:38:42.182974Z");
    CHECK(format_timestamp(system_clock::time_point{}) == "1970-01-01T00:00:00.000000Z");
  }

  TEST_CASE("plain golden: ztunnel's tab-separated header, bare addresses and numbers, quoted strings") {
    CHECK(format_plain(example(), kTime) ==
          "2024-04-11T15:38:42.182974Z\tinfo\taccess\tconnection complete\t"
          "src.addr=10.244.0.33:50676 src.workload=\"shell-5fb6d8c8b6-wd8mg\" src.namespace=\"default\" "
          "src.identity=\"spiffe://cluster.local/ns/default/sa/default\" dst.addr=10.244.0.34:15008 "
          "dst.hbone_addr=10.96.99.218:80 dst.service=\"echo-service.default.svc.cluster.local\" "
          "dst.workload=\"echo-service-7bdb4f9b8-7n5cq\" dst.namespace=\"default\" "
          "dst.identity=\"spiffe://cluster.local/ns/default/sa/default\" direction=\"outbound\" "
          "bytes_sent=67 bytes_recv=490 duration=\"2ms\"");
  }

  TEST_CASE("JSON golden: level, time, scope, message, then the same fields; numbers stay numbers") {
    CHECK(format_json(example(), kTime) ==
          R"({"level":"info","time":"2024-04-11T15:38:42.182974Z","scope":"access","message":"connection complete",)"
          R"("src.addr":"10.244.0.33:50676","src.workload":"shell-5fb6d8c8b6-wd8mg","src.namespace":"default",)"
          R"("src.identity":"spiffe://cluster.local/ns/default/sa/default","dst.addr":"10.244.0.34:15008",)"
          R"("dst.hbone_addr":"10.96.99.218:80","dst.service":"echo-service.default.svc.cluster.local",)"
          R"("dst.workload":"echo-service-7bdb4f9b8-7n5cq","dst.namespace":"default",)"
          R"("dst.identity":"spiffe://cluster.local/ns/default/sa/default","direction":"outbound",)"
          R"("bytes_sent":67,"bytes_recv":490,"duration":"2ms"})");
  }

  TEST_CASE("a failed connection logs at error with error last; empty fields are omitted") {
    ConnectionRecord r;
    r.src_addr = "10.0.0.1:40000";
    r.dst_addr = "10.0.0.2:15008";
    r.dst_hbone_addr = "10.0.0.2:8080";
    r.direction = Direction::Inbound;
    r.bytes_sent = 0;
    r.bytes_recv = 12;
    r.duration = milliseconds{1500};
    r.error = "connection refused: \"upstream\" said no\n";
    CHECK(level_of(r) == spdlog::level::err);
    CHECK(format_plain(r, kTime) ==
          "2024-04-11T15:38:42.182974Z\terror\taccess\tconnection complete\t"
          "src.addr=10.0.0.1:40000 dst.addr=10.0.0.2:15008 dst.hbone_addr=10.0.0.2:8080 direction=\"inbound\" "
          "bytes_sent=0 bytes_recv=12 duration=\"1500ms\" error=\"connection refused: \\\"upstream\\\" said no\\n\"");
    CHECK(format_json(r, kTime) ==
          R"({"level":"error","time":"2024-04-11T15:38:42.182974Z","scope":"access","message":"connection complete",)"
          R"("src.addr":"10.0.0.1:40000","dst.addr":"10.0.0.2:15008","dst.hbone_addr":"10.0.0.2:8080",)"
          R"("direction":"inbound","bytes_sent":0,"bytes_recv":12,"duration":"1500ms",)"
          R"("error":"connection refused: \"upstream\" said no\n"})");
  }

  TEST_CASE("early failure (warn) and connection opened (debug) carry ztunnel's field subsets") {
    ConnectionRecord failed = example();
    failed.event = AccessEvent::Failed;
    failed.direction = Direction::Inbound;
    failed.error = "unknown source";
    CHECK(level_of(failed) == spdlog::level::warn);
    CHECK(format_plain(failed, kTime) ==
          "2024-04-11T15:38:42.182974Z\twarn\taccess\tconnection failed\t"
          "src.addr=10.244.0.33:50676 dst.addr=10.244.0.34:15008 direction=\"inbound\" error=\"unknown source\"");

    ConnectionRecord opened = example();
    opened.event = AccessEvent::Opened;
    CHECK(level_of(opened) == spdlog::level::debug);
    const std::string line = format_plain(opened, kTime);
    CHECK(line.rfind("2024-04-11T15:38:42.182974Z\tdebug\taccess\tconnection opened\tsrc.addr=", 0) == 0);
    CHECK(line.ends_with("direction=\"outbound\""));
    CHECK(line.find("bytes_sent") == std::string::npos);
    CHECK(line.find("duration") == std::string::npos);
  }

  TEST_CASE("escaping: Rust Debug in plain, JSON escapes in JSON, control bytes") {
    ConnectionRecord r;
    r.src_addr = "1.2.3.4:5";
    r.src_workload = "tab\there\\back\x01";
    r.direction = Direction::Outbound;
    const std::string plain = format_plain(r, kTime);
    CHECK(plain.find("src.workload=\"tab\\there\\\\back\\u{1}\"") != std::string::npos);
    const std::string json = format_json(r, kTime);
    CHECK(json.find(R"("src.workload":"tab\there\\back\u0001")") != std::string::npos);
    r.src_cluster = "Kubernetes";
    r.dst_cluster = "remote";
    const std::string clusters = format_plain(r, kTime);
    CHECK(clusters.find("src.cluster=\"Kubernetes\"") != std::string::npos);
    CHECK(clusters.find("dst.cluster=\"remote\"") != std::string::npos);
  }

  TEST_CASE("emit writes one line through the access logger, honours its level and the format") {
    CaptureAccessLog cap;
    REQUIRE(access_logger() == cap.logger);

    emit(example());
    std::string text = cap.out.str();
    CHECK(text.ends_with("bytes_sent=67 bytes_recv=490 duration=\"2ms\"\n"));
    CHECK(text.find("\tinfo\taccess\tconnection complete\t") != std::string::npos);
    CHECK(std::count(text.begin(), text.end(), '\n') == 1);

    ConnectionRecord opened = example();
    opened.event = AccessEvent::Opened;
    emit(opened);  // debug: filtered at info
    CHECK(cap.out.str() == text);
    cap.logger->set_level(spdlog::level::debug);
    emit(opened);
    CHECK(cap.out.str().find("\tdebug\taccess\tconnection opened\t") != std::string::npos);

    cap.out.str("");
    set_access_log_format(LogFormat::Json);
    emit(example());
    text = cap.out.str();
    CHECK(text.rfind(R"({"level":"info","time":")", 0) == 0);
    CHECK(text.ends_with(R"("bytes_sent":67,"bytes_recv":490,"duration":"2ms"})" "\n"));
  }
}
