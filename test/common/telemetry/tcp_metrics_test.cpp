#include <doctest/doctest.h>

#include <string>

#include "common/telemetry/tcp_metrics.h"

using namespace ambient::telemetry;

namespace {

constexpr const char* kAllUnknown =
    R"(reporter="source",source_workload="unknown",source_canonical_service="unknown",)"
    R"(source_canonical_revision="unknown",source_workload_namespace="unknown",source_principal="unknown",)"
    R"(source_app="unknown",source_version="unknown",source_cluster="unknown",destination_service="unknown",)"
    R"(destination_service_namespace="unknown",destination_service_name="unknown",destination_workload="unknown",)"
    R"(destination_canonical_service="unknown",destination_canonical_revision="unknown",)"
    R"(destination_workload_namespace="unknown",destination_principal="unknown",destination_app="unknown",)"
    R"(destination_version="unknown",destination_cluster="unknown",request_protocol="tcp",response_flags="-",)"
    R"(connection_security_policy="unknown")";

TcpLabels sleep_to_echo() {
  TcpLabels l;
  l.reporter = Reporter::Destination;
  l.source_workload = "sleep";
  l.source_canonical_service = "sleep";
  l.source_canonical_revision = "v1";
  l.source_workload_namespace = "default";
  l.source_principal = "spiffe://cluster.local/ns/default/sa/sleep";
  l.source_app = "sleep";
  l.source_version = "v1";
  l.source_cluster = "Kubernetes";
  l.destination_service = "echo.default.svc.cluster.local";
  l.destination_service_namespace = "default";
  l.destination_service_name = "echo";
  l.destination_workload = "echo";
  l.destination_canonical_service = "echo";
  l.destination_canonical_revision = "latest";
  l.destination_workload_namespace = "default";
  l.destination_principal = "spiffe://cluster.local/ns/default/sa/echo";
  l.destination_app = "echo";
  l.destination_version = "latest";
  l.destination_cluster = "Kubernetes";
  l.connection_security_policy = SecurityPolicy::MutualTls;
  return l;
}

constexpr const char* kSleepToEcho =
    R"(reporter="destination",source_workload="sleep",source_canonical_service="sleep",)"
    R"(source_canonical_revision="v1",source_workload_namespace="default",)"
    R"(source_principal="spiffe://cluster.local/ns/default/sa/sleep",source_app="sleep",source_version="v1",)"
    R"(source_cluster="Kubernetes",destination_service="echo.default.svc.cluster.local",)"
    R"(destination_service_namespace="default",destination_service_name="echo",destination_workload="echo",)"
    R"(destination_canonical_service="echo",destination_canonical_revision="latest",)"
    R"(destination_workload_namespace="default",destination_principal="spiffe://cluster.local/ns/default/sa/echo",)"
    R"(destination_app="echo",destination_version="latest",destination_cluster="Kubernetes",)"
    R"(request_protocol="tcp",response_flags="-",connection_security_policy="mutual_tls")";

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

}  // namespace

TEST_SUITE("common/telemetry/tcp_metrics") {
  TEST_CASE("TcpLabels render Istio's label set in ztunnel's order; empty values are unknown") {
    CHECK(render_labels(TcpLabels{}) == kAllUnknown);
    CHECK(render_labels(sleep_to_echo()) == kSleepToEcho);
  }

  TEST_CASE("response flags, security policy and locality labels") {
    CHECK(to_string(ResponseFlags::None) == "-");
    CHECK(to_string(ResponseFlags::Deny) == "DENY");
    CHECK(to_string(ResponseFlags::Connect) == "CONNECT");
    CHECK(to_string(ResponseFlags::TlsFailure) == "TLS_FAILURE");
    CHECK(to_string(ResponseFlags::H2HandshakeFailure) == "H2_HANDSHAKE_FAILURE");
    CHECK(to_string(ResponseFlags::NetworkPolicy) == "NETWORK_POLICY");
    CHECK(to_string(ResponseFlags::IdentityError) == "IDENTITY_ERROR");
    CHECK(to_string(ResponseFlags::CertRevoked) == "CERT_REVOKED");
    TcpLabels l;
    l.has_locality = true;
    l.source_region = "us-east1";
    l.destination_zone = "us-east1-b";
    CHECK(render_labels(l) == std::string(kAllUnknown) +
                                  R"(,source_region="us-east1",source_zone="unknown",)"
                                  R"(destination_region="unknown",destination_zone="us-east1-b")");
    TcpLabels quoted;
    quoted.source_workload = "we\"ird\\name";
    CHECK(render_labels(quoted).find(R"(source_workload="we\"ird\\name")") != std::string::npos);
  }

  TEST_CASE("the four Istio counters with exact names, and sockets open per reporter") {
    Registry reg;
    IstioTcpMetrics metrics(reg);
    MetricsShard& shard = reg.add_shard("worker-0");
    TcpMetricsRecorder rec(metrics, shard);

    auto a = rec.on_open(sleep_to_echo());
    auto b = rec.on_open(sleep_to_echo());  // same labels: same series, no new cache entry
    CHECK(rec.cached_label_sets() == 1);
    rec.on_bytes(a, 100, 7);
    rec.on_bytes(b, 20, 3);
    rec.on_bytes(a, 0, 0);
    rec.on_close(a);

    const std::string out = reg.render();
    const std::string labels = kSleepToEcho;
    CHECK(has_line(out, "istio_tcp_connections_opened_total{" + labels + "} 2"));
    CHECK(has_line(out, "istio_tcp_connections_closed_total{" + labels + "} 1"));
    CHECK(has_line(out, "istio_tcp_sent_bytes_total{" + labels + "} 120"));
    CHECK(has_line(out, "istio_tcp_received_bytes_total{" + labels + "} 10"));
    CHECK(has_line(out, "istio_tcp_sockets_open{reporter=\"destination\"} 1"));
    CHECK(has_line(out, "istio_tcp_sockets_open{reporter=\"source\"} 0"));
    CHECK(has_line(out, "# TYPE istio_tcp_connections_opened_total counter"));
    CHECK(has_line(out, "# HELP istio_tcp_connections_opened_total The total number of TCP connections opened"));

    rec.on_close(b);
    CHECK(has_line(reg.render(), "istio_tcp_sockets_open{reporter=\"destination\"} 0"));
  }

  TEST_CASE("a close with response flags counts under the flagged labels only") {
    Registry reg;
    IstioTcpMetrics metrics(reg);
    MetricsShard& shard = reg.add_shard("w");
    TcpMetricsRecorder rec(metrics, shard);

    TcpLabels l;  // all unknown, reporter=source
    auto h1 = rec.on_open(l);
    auto h2 = rec.on_open(l);
    rec.on_close(h1, ResponseFlags::Deny);
    rec.on_close(h2, ResponseFlags::Deny);

    std::string flagged = kAllUnknown;
    flagged.replace(flagged.find("response_flags=\"-\""), 18, "response_flags=\"DENY\"");
    const std::string out = reg.render();
    CHECK(has_line(out, "istio_tcp_connections_opened_total{" + std::string(kAllUnknown) + "} 2"));
    CHECK(has_line(out, "istio_tcp_connections_closed_total{" + flagged + "} 2"));
    CHECK(out.find("istio_tcp_connections_closed_total{" + std::string(kAllUnknown) + "}") != std::string::npos);
    CHECK(out.find("istio_tcp_connections_opened_total{" + flagged + "}") == std::string::npos);  // no zero series
    CHECK(out.find("istio_tcp_sent_bytes_total{" + flagged + "}") == std::string::npos);
    CHECK(has_line(out, "istio_tcp_sockets_open{reporter=\"source\"} 0"));
  }

  TEST_CASE("two workers with the same labels sum in one series; a null handle is a no-op") {
    Registry reg;
    IstioTcpMetrics metrics(reg);
    TcpMetricsRecorder r0(metrics, reg.add_shard("w0"));
    TcpMetricsRecorder r1(metrics, reg.add_shard("w1"));
    auto h0 = r0.on_open(sleep_to_echo());
    auto h1 = r1.on_open(sleep_to_echo());
    r0.on_bytes(h0, 5, 0);
    r1.on_bytes(h1, 6, 0);
    TcpMetricsHandle null;
    CHECK_FALSE(null);
    r0.on_bytes(null, 1000, 1000);
    r0.on_close(null);
    const std::string out = reg.render();
    CHECK(has_line(out, "istio_tcp_connections_opened_total{" + std::string(kSleepToEcho) + "} 2"));
    CHECK(has_line(out, "istio_tcp_sent_bytes_total{" + std::string(kSleepToEcho) + "} 11"));
    CHECK(has_line(out, "istio_tcp_received_bytes_total{" + std::string(kSleepToEcho) + "} 0"));
  }

  TEST_CASE("label hash and equality distinguish every field") {
    TcpLabelsHash hash;
    TcpLabels a = sleep_to_echo();
    TcpLabels b = a;
    CHECK(a == b);
    CHECK(hash(a) == hash(b));
    b.destination_zone = "z";
    CHECK_FALSE(a == b);
    b = a;
    b.response_flags = ResponseFlags::Connect;
    CHECK_FALSE(a == b);
    CHECK(hash(a) != hash(b));
  }
}
