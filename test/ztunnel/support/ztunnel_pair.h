#pragma once
// In-process ztunnel pair for integration tests: two App instances (dedicated mode) on loopback
// addresses 127.0.0.2 (client) and 127.0.0.3 (server), sharing a CA written as istiod-style cacerts
// files and one local config; admin/metrics/readiness on port 0. Each App's control loop runs on its own
// thread; the destructor drains both (SIGTERM path) and joins.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <spdlog/sinks/base_sink.h>

#include "common/telemetry/access_log.h"
#include "common/tls/pki.h"
#include "ztunnel/app/app.h"

namespace ambient::test {

inline std::string make_temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "ztunnel-test-XXXXXX").string();
  REQUIRE(mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

// ca-cert.pem, ca-key.pem, root-cert.pem: a fresh P-256 root.
inline void write_cacerts(const std::string& dir) {
  std::filesystem::create_directories(dir);
  auto key = tls::generate_p256_key();
  REQUIRE(key);
  tls::CertificateSpec spec;
  spec.organization = "cluster.local";
  spec.is_ca = true;
  spec.not_before = std::chrono::system_clock::now() - std::chrono::minutes(1);
  spec.not_after = std::chrono::system_clock::now() + std::chrono::hours(24);
  auto root = tls::sign_certificate(spec, key->get(), nullptr, nullptr);
  REQUIRE(root);
  std::ofstream(dir + "/ca-cert.pem") << *tls::certificate_to_pem(root->get());
  std::ofstream(dir + "/root-cert.pem") << *tls::certificate_to_pem(root->get());
  std::ofstream(dir + "/ca-key.pem") << *tls::private_key_to_pem(key->get());
}

// A sink that keeps every line in a string, read under the sink's own lock (workers log while tests read).
class CaptureSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string text() {
    std::lock_guard lock(mutex_);
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    text_.append(line.data(), line.size());
  }
  void flush_() override {}

 private:
  std::string text_;
};

// Captures access-log lines (all Apps in the process share the access logger).
struct AccessLogCapture {
  std::shared_ptr<CaptureSink> sink = std::make_shared<CaptureSink>();
  std::shared_ptr<spdlog::logger> previous = telemetry::access_logger();
  AccessLogCapture() {
    auto logger = std::make_shared<spdlog::logger>("access-test", sink);
    logger->set_pattern("%v");
    logger->set_level(spdlog::level::debug);
    telemetry::set_access_logger(logger);
  }
  ~AccessLogCapture() { telemetry::set_access_logger(previous); }
  std::string text() const { return sink->text(); }
  // Waits until `n` lines contain `needle` (records are written when each side's copy ends).
  std::string wait_for(std::string_view needle, int n = 1, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      std::string t = text();
      int count = 0;
      for (std::size_t pos = t.find(needle); pos != std::string::npos; pos = t.find(needle, pos + 1)) ++count;
      if (count >= n || std::chrono::steady_clock::now() >= deadline) return t;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
};

struct RunningZtunnel {
  std::unique_ptr<ztunnel::App> app;
  std::thread control;
  explicit RunningZtunnel(ztunnel::Config config) : app(std::make_unique<ztunnel::App>(std::move(config))) {
    auto r = app->start();
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
    control = std::thread([a = app.get()] { a->run(); });
  }
  ~RunningZtunnel() {
    app->shutdown();
    if (control.joinable()) control.join();
  }
};

inline ztunnel::Config pair_config(const std::string& yaml_path, const std::string& cacerts, const char* ip,
                                   const char* workload_info, unsigned workers) {
  ztunnel::Config config;  // defaults as load_config gives them; data-plane ports stay Istio's (15008 is the peer port)
  config.local_config_path = yaml_path;
  config.cacerts_dir = cacerts;
  std::string wi = workload_info;
  auto a = wi.find('/'), b = wi.rfind('/');
  config.workload = {wi.substr(0, a), wi.substr(a + 1, b - a - 1), wi.substr(b + 1)};
  config.bind_address = boost::asio::ip::make_address(ip);
  config.admin = {boost::asio::ip::make_address(ip), 0};
  config.metrics = {boost::asio::ip::make_address(ip), 0};
  config.readiness = {boost::asio::ip::make_address(ip), 0};
  config.worker_threads = workers;
  config.h2.ping_interval = std::chrono::milliseconds(0);
  config.termination_deadline = std::chrono::milliseconds(2000);
  return config;
}

}  // namespace ambient::test
