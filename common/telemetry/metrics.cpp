#include "common/telemetry/metrics.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace ambient::telemetry {

namespace {

[[noreturn]] void fatal(const std::string& msg) {
  spdlog::critical("metrics: {}", msg);
  std::abort();
}

bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  auto head = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; };
  if (!head(n[0])) return false;
  return std::all_of(n.begin() + 1, n.end(), [&](char c) { return head(c) || (c >= '0' && c <= '9'); });
}

std::string_view type_name(MetricType t) {
  switch (t) {
    case MetricType::Counter: return "counter";
    case MetricType::Gauge: return "gauge";
    case MetricType::Histogram: return "histogram";
  }
  return "unknown";
}

// Prometheus float syntax: NaN, +Inf, -Inf; shortest round-trip digits otherwise. OpenMetrics wants
// floats recognisable as such where a float is expected ("1.0", not "1").
std::string format_double(double v, bool openmetrics) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::string s = fmt::format("{}", v);
  if (openmetrics && s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

// HELP text: 0.0.4 escapes backslash and newline; OpenMetrics also the double quote.
std::string escape_help(std::string_view help, bool openmetrics) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '"' && openmetrics) out += "\\\"";
    else out += c;
  }
  return out;
}

double as_double(std::uint64_t bits) { return std::bit_cast<double>(bits); }

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Free helpers

ExpositionFormat negotiate_format(std::string_view accept) {
  return accept.find("application/openmetrics-text") != std::string_view::npos ? ExpositionFormat::OpenMetrics100
                                                                               : ExpositionFormat::Text004;
}

std::string_view content_type(ExpositionFormat format) {
  switch (format) {
    case ExpositionFormat::Text004: return "text/plain; version=0.0.4; charset=utf-8";
    case ExpositionFormat::OpenMetrics100: return "application/openmetrics-text; version=1.0.0; charset=utf-8";
  }
  return "text/plain";
}

namespace {
void append_escaped(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}
}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  append_escaped(out, value);
  return out;
}

void append_label(std::string& out, std::string_view name, std::string_view value) {
  if (!out.empty()) out += ',';
  out += name;
  out += "=\"";
  append_escaped(out, value);
  out += '"';
}

std::string render_labels(std::span<const Label> labels) {
  std::string out;
  for (const auto& l : labels) append_label(out, l.name, l.value);
  return out;
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
  if (!(start > 0) || !(factor > 1)) fatal(fmt::format("exponential_buckets({}, {}, {}): need start > 0, factor > 1", start, factor, count));
  std::vector<double> out;
  out.reserve(count);
  for (double b = start; out.size() < count; b *= factor) out.push_back(b);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Family and handles

Family::Family(std::string name, std::string help, MetricType type, std::vector<double> bounds)
    : name_(std::move(name)), help_(std::move(help)), type_(type), bounds_(std::move(bounds)) {}

std::size_t Family::cells() const noexcept {
  return type_ == MetricType::Histogram ? bounds_.size() + 2 : 1;
}

detail::Cell* detail::discard_cells() noexcept {
  static Cell cells[2];  // enough for a default Histogram (no bounds: +Inf and sum)
  return cells;
}

void Histogram::observe(double v) const noexcept {
  std::size_t i = nbounds_;  // NaN: +Inf bucket
  if (!std::isnan(v)) i = static_cast<std::size_t>(std::lower_bound(bounds_, bounds_ + nbounds_, v) - bounds_);
  detail::add_cell(cells_[i], 1);
  detail::Cell& sum = cells_[nbounds_ + 1];
  sum.store(std::bit_cast<std::uint64_t>(as_double(sum.load(std::memory_order_relaxed)) + v),
            std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------------------------
// MetricsShard

MetricsShard::MetricsShard(std::string name) : name_(std::move(name)) {}

MetricsShard::~MetricsShard() {
  for (auto& c : chunks_) delete[] c.load(std::memory_order_relaxed);
}

detail::Cell* MetricsShard::intern(const Family& family, MetricType want, std::string_view label_text) {
  if (family.type() != want) {
    fatal(fmt::format("family {} is a {}, used as a {}", family.name(), type_name(family.type()), type_name(want)));
  }
  Index& idx = index_[&family];
  if (auto it = idx.find(label_text); it != idx.end()) return it->second->cells.get();

  const std::size_t n = published_.load(std::memory_order_relaxed);  // we are the only writer
  if (n >= kMaxSeriesPerShard) {
    if (!warned_full_) {
      spdlog::warn("metrics: shard {} holds {} series, the limit; new label sets are not exported", name_, n);
      warned_full_ = true;
    }
    auto& o = overflow_[&family];
    if (!o) {
      o = std::make_unique<Series>();
      o->family = &family;
      o->cells = std::make_unique<detail::Cell[]>(family.cells());
    }
    return o->cells.get();
  }
  Series* chunk = chunks_[n / kChunkSize].load(std::memory_order_relaxed);
  if (chunk == nullptr) {
    chunk = new Series[kChunkSize];
    chunks_[n / kChunkSize].store(chunk, std::memory_order_relaxed);  // published by the store below
  }
  Series& s = chunk[n % kChunkSize];
  s.family = &family;
  s.labels = std::string(label_text);
  s.cells = std::make_unique<detail::Cell[]>(family.cells());  // value-initialised: zero
  idx.emplace(s.labels, &s);
  published_.store(n + 1, std::memory_order_release);
  return s.cells.get();
}

template <typename Fn>
void MetricsShard::for_each_published(Fn&& fn) const {
  const std::size_t n = published_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i) {
    const Series* chunk = chunks_[i / kChunkSize].load(std::memory_order_relaxed);
    fn(chunk[i % kChunkSize]);
  }
}

Counter MetricsShard::counter_rendered(const Family& f, std::string_view text) {
  return Counter(intern(f, MetricType::Counter, text));
}
Gauge MetricsShard::gauge_rendered(const Family& f, std::string_view text) {
  return Gauge(intern(f, MetricType::Gauge, text));
}
Histogram MetricsShard::histogram_rendered(const Family& f, std::string_view text) {
  return Histogram(intern(f, MetricType::Histogram, text), f.bounds().data(), f.bounds().size());
}

Counter MetricsShard::counter(const Family& f, std::span<const Label> labels) {
  return counter_rendered(f, render_labels(labels));
}
Gauge MetricsShard::gauge(const Family& f, std::span<const Label> labels) {
  return gauge_rendered(f, render_labels(labels));
}
Histogram MetricsShard::histogram(const Family& f, std::span<const Label> labels) {
  return histogram_rendered(f, render_labels(labels));
}
Counter MetricsShard::counter(const Family& f, std::initializer_list<Label> labels) {
  return counter(f, std::span<const Label>(labels.begin(), labels.size()));
}
Gauge MetricsShard::gauge(const Family& f, std::initializer_list<Label> labels) {
  return gauge(f, std::span<const Label>(labels.begin(), labels.size()));
}
Histogram MetricsShard::histogram(const Family& f, std::initializer_list<Label> labels) {
  return histogram(f, std::span<const Label>(labels.begin(), labels.size()));
}

// ---------------------------------------------------------------------------------------------------
// Registry

Registry::~Registry() = default;

Family& Registry::add_family(std::string name, std::string help, MetricType type, std::vector<double> bounds) {
  if (type == MetricType::Counter && name.size() > 6 && name.ends_with("_total")) name.resize(name.size() - 6);
  if (!valid_metric_name(name)) fatal(fmt::format("invalid metric name '{}'", name));
  if (type == MetricType::Histogram) {
    for (std::size_t i = 0; i < bounds.size(); ++i) {
      if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i - 1] < bounds[i]))) {
        fatal(fmt::format("histogram {}: bounds must be finite and strictly increasing", name));
      }
    }
  }
  std::lock_guard lock(mu_);
  if (auto it = families_.find(name); it != families_.end()) {
    Family& f = *it->second;
    if (f.type() != type || f.bounds() != bounds) {
      fatal(fmt::format("metric {} registered twice with different types or buckets", name));
    }
    return f;
  }
  auto f = std::unique_ptr<Family>(new Family(name, std::move(help), type, std::move(bounds)));
  Family& ref = *f;
  families_.emplace(std::move(name), std::move(f));
  return ref;
}

const Family& Registry::counter(std::string name, std::string help) {
  return add_family(std::move(name), std::move(help), MetricType::Counter, {});
}

const Family& Registry::gauge(std::string name, std::string help) {
  return add_family(std::move(name), std::move(help), MetricType::Gauge, {});
}

const Family& Registry::histogram(std::string name, std::string help, std::vector<double> bounds) {
  return add_family(std::move(name), std::move(help), MetricType::Histogram, std::move(bounds));
}

void Registry::gauge_callback(std::string name, std::string help, std::span<const Label> labels,
                              std::function<double()> fn) {
  Family& f = add_family(std::move(name), std::move(help), MetricType::Gauge, {});
  std::lock_guard lock(mu_);
  f.callbacks_.push_back(Family::Callback{render_labels(labels), std::move(fn)});
}

MetricsShard& Registry::add_shard(std::string name) {
  std::lock_guard lock(mu_);
  shards_.push_back(std::unique_ptr<MetricsShard>(new MetricsShard(std::move(name))));
  return *shards_.back();
}

std::string Registry::render(ExpositionFormat format) const {
  const bool om = format == ExpositionFormat::OpenMetrics100;

  // One accumulator per (family, label text): integer cells summed with wrap-around (gauge deltas
  // are two's complement), histogram sums and callback values as doubles.
  struct Acc {
    std::vector<std::uint64_t> cells;
    double sum = 0;           // histogram _sum
    double fvalue = 0;        // callback gauges
    bool has_double = false;  // a callback contributed
  };
  using SeriesMap = std::map<std::string_view, Acc>;  // sorted by label text
  std::unordered_map<const Family*, SeriesMap> acc;

  std::lock_guard lock(mu_);
  for (const auto& shard : shards_) {
    shard->for_each_published([&](const MetricsShard::Series& s) {
      const Family& f = *s.family;
      Acc& a = acc[&f][s.labels];
      const std::size_t ncells = f.cells();
      const std::size_t nint = f.type() == MetricType::Histogram ? ncells - 1 : ncells;
      a.cells.resize(nint, 0);
      for (std::size_t i = 0; i < nint; ++i) a.cells[i] += s.cells[i].load(std::memory_order_relaxed);
      if (f.type() == MetricType::Histogram) a.sum += as_double(s.cells[nint].load(std::memory_order_relaxed));
    });
  }
  for (const auto& [name, f] : families_) {
    for (const auto& cb : f->callbacks_) {
      Acc& a = acc[f.get()][cb.labels];
      a.cells.resize(1, 0);
      a.fvalue += cb.value();
      a.has_double = true;
    }
  }

  std::string out;
  auto braces = [](std::string_view labels) {
    return labels.empty() ? std::string() : fmt::format("{{{}}}", labels);
  };
  for (const auto& [name, fp] : families_) {
    const Family& f = *fp;
    const bool counter = f.type() == MetricType::Counter;
    const std::string family_name = counter && !om ? f.name() + "_total" : f.name();
    if (!f.help().empty()) fmt::format_to(std::back_inserter(out), "# HELP {} {}\n", family_name, escape_help(f.help(), om));
    fmt::format_to(std::back_inserter(out), "# TYPE {} {}\n", family_name, type_name(f.type()));
    auto it = acc.find(&f);
    if (it == acc.end()) continue;
    for (const auto& [labels, a] : it->second) {
      switch (f.type()) {
        case MetricType::Counter:
          fmt::format_to(std::back_inserter(out), "{}_total{} {}\n", f.name(), braces(labels), a.cells[0]);
          break;
        case MetricType::Gauge: {
          const auto iv = static_cast<std::int64_t>(a.cells[0]);
          if (a.has_double) {
            fmt::format_to(std::back_inserter(out), "{}{} {}\n", f.name(), braces(labels),
                           format_double(a.fvalue + static_cast<double>(iv), false));
          } else {
            fmt::format_to(std::back_inserter(out), "{}{} {}\n", f.name(), braces(labels), iv);
          }
          break;
        }
        case MetricType::Histogram: {
          const std::string sep = labels.empty() ? "" : ",";
          std::uint64_t cumulative = 0;
          for (std::size_t i = 0; i < f.bounds().size(); ++i) {
            cumulative += a.cells[i];
            fmt::format_to(std::back_inserter(out), "{}_bucket{{{}{}le=\"{}\"}} {}\n", f.name(), labels, sep,
                           format_double(f.bounds()[i], om), cumulative);
          }
          cumulative += a.cells[f.bounds().size()];
          fmt::format_to(std::back_inserter(out), "{}_bucket{{{}{}le=\"+Inf\"}} {}\n", f.name(), labels, sep, cumulative);
          fmt::format_to(std::back_inserter(out), "{}_sum{} {}\n", f.name(), braces(labels), format_double(a.sum, false));
          fmt::format_to(std::back_inserter(out), "{}_count{} {}\n", f.name(), braces(labels), cumulative);
          break;
        }
      }
    }
  }
  if (om) out += "# EOF\n";
  return out;
}

}  // namespace ambient::telemetry
