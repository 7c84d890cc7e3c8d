#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/telemetry/metrics.h"

using namespace ambient::telemetry;

namespace {

// The value of the sample line "<series> <value>" in an exposition, if present.
std::optional<std::string> sample(const std::string& text, const std::string& series) {
  const std::string prefix = series + " ";
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t eol = text.find('\n', pos);
    const std::string line = text.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
    if (eol == std::string::npos) break;
    pos = eol + 1;
  }
  return std::nullopt;
}

std::uint64_t sample_u64(const std::string& text, const std::string& series) {
  const auto v = sample(text, series);
  REQUIRE_MESSAGE(v.has_value(), "missing series " << series << " in:\n" << text);
  return std::stoull(*v);
}

// A registry with one family of each type and a few series, shared by the golden tests.
struct Fixture {
  Registry reg;
  const Family& requests = reg.counter("http_requests_total", "Requests served.");
  const Family& temperature = reg.gauge("room_temperature", "Current \"temperature\"\\ in C.\nSecond line");
  const Family& latency = reg.histogram("latency_seconds", "Latency.", {0.25, 0.5, 1});

  Fixture() {
    MetricsShard& w0 = reg.add_shard("w0");
    MetricsShard& w1 = reg.add_shard("w1");
    // Interned twice on w0: the same series. The 200 series also exists on w1: summed.
    w0.counter(requests, {{"code", "200"}, {"path", "/a"}}).inc(3);
    w0.counter(requests, {{"code", "500"}, {"path", "/a\"b\\c\nd"}}).inc();
    w0.counter(requests, {{"code", "200"}, {"path", "/a"}}).inc(1);
    w1.counter(requests, {{"code", "200"}, {"path", "/a"}}).inc(1);
    w0.gauge(temperature).add(3);
    w1.gauge(temperature).sub(7);  // gauges are per-shard deltas: 3 - 7
    auto h = w1.histogram(latency, {{"op", "get"}});
    h.observe(0.125);  // le 0.25
    h.observe(0.25);   // le 0.25 (bounds are inclusive)
    h.observe(0.375);  // le 0.5
    h.observe(2);      // +Inf
  }
};

}  // namespace

TEST_SUITE("common/telemetry/metrics") {
  TEST_CASE("text 0.0.4 golden: families by name, series by labels, escaping, shard sums") {
    Fixture f;
    CHECK(f.reg.render(ExpositionFormat::Text004) ==
          R"(# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{code="200",path="/a"} 5
http_requests_total{code="500",path="/a\"b\\c\nd"} 1
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{op="get",le="0.25"} 2
latency_seconds_bucket{op="get",le="0.5"} 3
latency_seconds_bucket{op="get",le="1"} 3
latency_seconds_bucket{op="get",le="+Inf"} 4
latency_seconds_sum{op="get"} 2.75
latency_seconds_count{op="get"} 4
# HELP room_temperature Current "temperature"\\ in C.\nSecond line
# TYPE room_temperature gauge
room_temperature -4
)");
  }

  TEST_CASE("OpenMetrics golden: counter family without _total, samples with it, float le, # EOF") {
    Fixture f;
    CHECK(f.reg.render(ExpositionFormat::OpenMetrics100) ==
          R"(# HELP http_requests Requests served.
# TYPE http_requests counter
http_requests_total{code="200",path="/a"} 5
http_requests_total{code="500",path="/a\"b\\c\nd"} 1
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{op="get",le="0.25"} 2
latency_seconds_bucket{op="get",le="0.5"} 3
latency_seconds_bucket{op="get",le="1.0"} 3
latency_seconds_bucket{op="get",le="+Inf"} 4
latency_seconds_sum{op="get"} 2.75
latency_seconds_count{op="get"} 4
# HELP room_temperature Current \"temperature\"\\ in C.\nSecond line
# TYPE room_temperature gauge
room_temperature -4
# EOF
)");
  }

  TEST_CASE("rendering is stable across scrapes and independent of interning order") {
    Registry a;
    Registry b;
    const Family& fa = a.counter("c", "h");
    const Family& fb = b.counter("c", "h");
    auto& sa = a.add_shard("s");
    auto& sb = b.add_shard("s");
    for (const char* v : {"b", "a", "c"}) sa.counter(fa, {{"k", v}}).inc();
    for (const char* v : {"c", "b", "a"}) sb.counter(fb, {{"k", v}}).inc();
    CHECK(a.render() == b.render());
    CHECK(a.render() == a.render());
    CHECK(a.render() == "# HELP c_total h\n# TYPE c_total counter\nc_total{k=\"a\"} 1\nc_total{k=\"b\"} 1\nc_total{k=\"c\"} 1\n");
  }

  TEST_CASE("registration is idempotent; a family with no series still has HELP and TYPE") {
    Registry reg;
    const Family& a = reg.counter("x_total", "X.");
    const Family& b = reg.counter("x", "other help is ignored");
    CHECK(&a == &b);
    CHECK(a.name() == "x");
    CHECK(reg.render() == "# HELP x_total X.\n# TYPE x_total counter\n");
  }

  TEST_CASE("label helpers escape backslash, quote and newline only") {
    CHECK(escape_label_value("a\\b\"c\nd\te") == "a\\\\b\\\"c\\nd\te");
    const Label labels[] = {{"a", "1"}, {"b", "x\"y"}};
    CHECK(render_labels(labels) == "a=\"1\",b=\"x\\\"y\"");
    CHECK(render_labels(std::span<const Label>()) == "");
  }

  TEST_CASE("format negotiation and content types") {
    CHECK(negotiate_format("") == ExpositionFormat::Text004);
    CHECK(negotiate_format("text/plain;version=0.0.4;q=0.5,*/*;q=0.1") == ExpositionFormat::Text004);
    CHECK(negotiate_format("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5") ==
          ExpositionFormat::OpenMetrics100);
    CHECK(content_type(ExpositionFormat::Text004) == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(content_type(ExpositionFormat::OpenMetrics100) ==
          "application/openmetrics-text; version=1.0.0; charset=utf-8");
  }

  TEST_CASE("histogram: inclusive upper bounds, NaN in +Inf, exponential buckets") {
    Registry reg;
    const Family& h = reg.histogram("dur_seconds", "D.", exponential_buckets(0.001, 10, 4));
    REQUIRE(h.bounds() == std::vector<double>{0.001, 0.01, 0.1, 1});
    CHECK(h.cells() == 6);
    auto& s = reg.add_shard("s");
    auto hist = s.histogram(h);
    for (double v : {0.0005, 0.001, 0.002, 0.05, 1.0, 1.5}) hist.observe(v);
    const std::string out = reg.render();
    CHECK(sample_u64(out, "dur_seconds_bucket{le=\"0.001\"}") == 2);
    CHECK(sample_u64(out, "dur_seconds_bucket{le=\"0.01\"}") == 3);
    CHECK(sample_u64(out, "dur_seconds_bucket{le=\"0.1\"}") == 4);
    CHECK(sample_u64(out, "dur_seconds_bucket{le=\"1\"}") == 5);
    CHECK(sample_u64(out, "dur_seconds_bucket{le=\"+Inf\"}") == 6);
    CHECK(sample_u64(out, "dur_seconds_count") == 6);
    CHECK(std::stod(*sample(out, "dur_seconds_sum")) == doctest::Approx(2.5535));

    hist.observe(std::nan(""));
    const std::string after = reg.render();
    CHECK(sample_u64(after, "dur_seconds_bucket{le=\"1\"}") == 5);
    CHECK(sample_u64(after, "dur_seconds_bucket{le=\"+Inf\"}") == 7);
    CHECK(sample(after, "dur_seconds_sum") == "NaN");
  }

  TEST_CASE("callback gauges are evaluated at each scrape and merge with shard series") {
    Registry reg;
    int calls = 0;
    const Label l[] = {{"kind", "cb"}};
    reg.gauge_callback("things", "Things.", l, [&calls] { return static_cast<double>(++calls); });
    auto& s = reg.add_shard("s");
    s.gauge(reg.gauge("things", "Things."), {{"kind", "shard"}}).add(7);
    CHECK(reg.render() == "# HELP things Things.\n# TYPE things gauge\nthings{kind=\"cb\"} 1\nthings{kind=\"shard\"} 7\n");
    CHECK(sample(reg.render(), "things{kind=\"cb\"}") == "2");
  }

  TEST_CASE("default-constructed handles are usable and never rendered") {
    Registry reg;
    reg.counter("c", "C.");
    Counter c;
    Gauge g;
    Histogram h;
    c.inc(5);
    g.add(2);
    h.observe(1);
    CHECK(reg.render() == "# HELP c_total C.\n# TYPE c_total counter\n");
  }

  TEST_CASE("4 worker threads on their own shards, a concurrent scraper: exact sums, monotonic scrapes") {
    Registry reg;
    const Family& bytes = reg.counter("bytes_total", "Bytes.");
    const Family& open = reg.gauge("open", "Open.");
    const Family& lat = reg.histogram("lat", "Lat.", {10, 100});
    constexpr int kThreads = 4;
    constexpr std::uint64_t kIters = 200'000;
    std::vector<MetricsShard*> shards;
    for (int t = 0; t < kThreads; ++t) shards.push_back(&reg.add_shard("worker-" + std::to_string(t)));

    std::atomic<bool> done{false};
    std::atomic<int> scrapes{0};
    std::atomic<bool> monotonic{true};
    std::thread scraper([&] {
      std::uint64_t last = 0;
      while (!done.load()) {
        const std::string out = reg.render();
        const auto v = sample(out, "bytes_total{dir=\"rx\"}");
        if (v) {
          const std::uint64_t now = std::stoull(*v);
          if (now < last) monotonic = false;
          last = now;
        }
        ++scrapes;
      }
    });

    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t) {
      workers.emplace_back([&, t] {
        // Start once the scraper has scraped (a loaded machine may otherwise finish the loop before it runs).
        while (scrapes.load() == 0) std::this_thread::yield();
        MetricsShard& shard = *shards[static_cast<std::size_t>(t)];
        // Hot path: handles interned once, then plain single-writer updates.
        const Counter rx = shard.counter(bytes, {{"dir", "rx"}});
        const Counter tx = shard.counter(bytes, {{"dir", "tx"}});
        const Gauge g = shard.gauge(open);
        const Histogram h = shard.histogram(lat);
        for (std::uint64_t i = 0; i < kIters; ++i) {
          rx.inc(i % 3);
          tx.inc();
          g.add(1);
          if (i % 2 == 1) g.sub(1);
          h.observe(static_cast<double>(i % 200));
          // New series appear while the scraper reads: one per 20000 iterations per thread.
          if (i % 20'000 == 0) shard.counter(bytes, {{"dir", "x" + std::to_string(i / 20'000)}}).inc();
        }
      });
    }
    for (auto& w : workers) w.join();
    done = true;
    scraper.join();

    // sum over i of i % 3 for i < kIters
    std::uint64_t rx_per_thread = 0;
    for (std::uint64_t i = 0; i < kIters; ++i) rx_per_thread += i % 3;
    const std::string out = reg.render();
    CHECK(sample_u64(out, "bytes_total{dir=\"rx\"}") == kThreads * rx_per_thread);
    CHECK(sample_u64(out, "bytes_total{dir=\"tx\"}") == kThreads * kIters);
    CHECK(sample_u64(out, "bytes_total{dir=\"x3\"}") == kThreads);
    CHECK(sample(out, "open") == std::to_string(kThreads * kIters / 2));
    CHECK(sample_u64(out, "lat_bucket{le=\"10\"}") == kThreads * (kIters / 200) * 11);    // 0..10
    CHECK(sample_u64(out, "lat_bucket{le=\"100\"}") == kThreads * (kIters / 200) * 101);  // 0..100
    CHECK(sample_u64(out, "lat_count") == kThreads * kIters);
    CHECK(monotonic.load());
    CHECK(scrapes.load() > 0);
    for (auto* s : shards) CHECK(s->series_count() == 14);  // rx, tx, x0..x9, open, lat
  }
}
