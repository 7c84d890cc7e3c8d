#pragma once
// Prometheus metrics for N worker threads, with no lock and no shared write on the data path.
//
//   Registry      one per process. Owns the metric families and one MetricsShard per recording thread.
//                 render() (the scrape, on the control/admin thread) sums the shards and writes text
//                 exposition 0.0.4 or OpenMetrics 1.0.0.
//   Family        name, help, type (and bucket bounds for histograms). Immutable once registered.
//   MetricsShard  owned and written by exactly one thread (a worker). It interns label sets into
//                 series and hands out Counter / Gauge / Histogram handles on the series' cells.
//   Counter, Gauge, Histogram
//                 trivially copyable handles. An update is a relaxed load + store on a cell that only
//                 the owning thread writes: no lock, no locked read-modify-write, no shared cache line
//                 with another worker's series.
//
// Invariants:
//  - A series' cells are written by its shard's thread only. render() reads them with relaxed loads:
//    each value is one the cell held recently; the cells of one histogram may be skewed by observations
//    in flight (as in every Prometheus client). Counters never go down in the exposition.
//  - Series are append-only. A shard publishes series [0, published) with a release store; the label
//    text and the cell addresses of a published series never change; series are never removed, so a
//    handle stays valid as long as the Registry lives. Handles must not outlive the Registry.
//  - Gauges kept in shards are additive: each shard holds its own delta, the scrape sums them (sockets
//    open = opened on worker 1 - closed on worker 1 + ...). A gauge that is set() must be set from one
//    shard only. Point-in-time values (process_open_fds...) are callback gauges evaluated by render().
//  - Registration (counter(), gauge(), histogram(), gauge_callback(), add_shard()) and render() may run
//    on any thread; they take the registry's mutex, which the data path never touches.
//
// Exposition: families sorted by name, series sorted by their label text (stable across scrapes).
// Counters are registered with or without the "_total" suffix; 0.0.4 names the family "<base>_total",
// OpenMetrics names the family "<base>" and its samples "<base>_total" (and ends with "# EOF").
//
// Limits: kMaxSeriesPerShard = 1024 chunks * 256 = 262,144 series per shard. Past it, a new label set
// gets a private series that is never published (its updates are dropped from the exposition) and a
// warning is logged once per shard.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ambient::telemetry {

enum class MetricType : std::uint8_t {
  Counter,    // monotonic uint64; rendered "<base>_total"
  Gauge,      // int64 (sum of per-shard deltas) or double (callback)
  Histogram,  // cumulative buckets "le", plus _sum and _count
};

enum class ExpositionFormat : std::uint8_t {
  Text004,            // text/plain; version=0.0.4
  OpenMetrics100,     // application/openmetrics-text; version=1.0.0
};

// Picks OpenMetrics when the Accept header lists application/openmetrics-text, else text 0.0.4.
ExpositionFormat negotiate_format(std::string_view accept_header);
std::string_view content_type(ExpositionFormat format);

struct Label {
  std::string_view name;
  std::string_view value;
};

// Escapes a label value for the exposition: backslash, double quote and newline.
std::string escape_label_value(std::string_view value);
// `a="x",b="y"`: the label text of a series, without braces, values escaped, in the given order.
std::string render_labels(std::span<const Label> labels);
void append_label(std::string& out, std::string_view name, std::string_view value);

// Bucket upper bounds: start, start*factor, ... (count values). start > 0, factor > 1.
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);

class Family {
 public:
  const std::string& name() const noexcept { return name_; }  // counters: without "_total"
  const std::string& help() const noexcept { return help_; }
  MetricType type() const noexcept { return type_; }
  const std::vector<double>& bounds() const noexcept { return bounds_; }  // histograms only
  // Cells per series: 1 for counters and gauges; buckets + 1 (+Inf) + 1 (sum) for histograms.
  std::size_t cells() const noexcept;

 private:
  friend class Registry;
  Family(std::string name, std::string help, MetricType type, std::vector<double> bounds);

  struct Callback {
    std::string labels;                // rendered label text
    std::function<double()> value;     // evaluated by render()
  };

  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<double> bounds_;
  std::vector<Callback> callbacks_;    // guarded by the Registry's mutex
};

namespace detail {
using Cell = std::atomic<std::uint64_t>;

// Single-writer update: the owning thread is the only writer, so a relaxed load + store is exact and
// avoids the locked instruction of fetch_add. Readers see each value whole (the cell is atomic).
inline void add_cell(Cell& c, std::uint64_t n) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

Cell* discard_cells() noexcept;  // where default-constructed handles write; never rendered
}  // namespace detail

// Handles. Use only on the thread that owns the shard they came from. Default-constructed handles
// are valid and write to a discard cell.
class Counter {
 public:
  Counter() noexcept : cell_(detail::discard_cells()) {}
  void inc(std::uint64_t n = 1) const noexcept { detail::add_cell(*cell_, n); }
  std::uint64_t value() const noexcept { return cell_->load(std::memory_order_relaxed); }  // this shard

 private:
  friend class MetricsShard;
  explicit Counter(detail::Cell* c) noexcept : cell_(c) {}
  detail::Cell* cell_;
};

class Gauge {
 public:
  Gauge() noexcept : cell_(detail::discard_cells()) {}
  void add(std::int64_t n) const noexcept { detail::add_cell(*cell_, static_cast<std::uint64_t>(n)); }
  void sub(std::int64_t n) const noexcept { add(-n); }
  void set(std::int64_t v) const noexcept { cell_->store(static_cast<std::uint64_t>(v), std::memory_order_relaxed); }
  std::int64_t value() const noexcept { return static_cast<std::int64_t>(cell_->load(std::memory_order_relaxed)); }

 private:
  friend class MetricsShard;
  explicit Gauge(detail::Cell* c) noexcept : cell_(c) {}
  detail::Cell* cell_;
};

class Histogram {
 public:
  Histogram() noexcept : cells_(detail::discard_cells()), bounds_(nullptr), nbounds_(0) {}
  // Counts `v` in the first bucket whose bound is >= v (Prometheus "le"), NaN in +Inf; adds v to the sum.
  void observe(double v) const noexcept;

 private:
  friend class MetricsShard;
  Histogram(detail::Cell* cells, const double* bounds, std::size_t n) noexcept
      : cells_(cells), bounds_(bounds), nbounds_(n) {}
  detail::Cell* cells_;    // [0, n) finite buckets, [n] +Inf, [n + 1] sum (double bits); not cumulative
  const double* bounds_;
  std::size_t nbounds_;
};

class MetricsShard {
 public:
  static constexpr std::size_t kChunkSize = 256;
  static constexpr std::size_t kMaxChunks = 1024;
  static constexpr std::size_t kMaxSeriesPerShard = kChunkSize * kMaxChunks;

  MetricsShard(const MetricsShard&) = delete;
  MetricsShard& operator=(const MetricsShard&) = delete;
  ~MetricsShard();

  // Interning: owner thread only. Returns the handle of this label set's series in `family`, creating
  // it on first use (one map lookup; allocation only the first time). The family's type must match.
  Counter counter(const Family& family, std::initializer_list<Label> labels = {});
  Gauge gauge(const Family& family, std::initializer_list<Label> labels = {});
  Histogram histogram(const Family& family, std::initializer_list<Label> labels = {});
  Counter counter(const Family& family, std::span<const Label> labels);
  Gauge gauge(const Family& family, std::span<const Label> labels);
  Histogram histogram(const Family& family, std::span<const Label> labels);
  // Same with label text already rendered by render_labels() (callers that cache it).
  Counter counter_rendered(const Family& family, std::string_view label_text);
  Gauge gauge_rendered(const Family& family, std::string_view label_text);
  Histogram histogram_rendered(const Family& family, std::string_view label_text);

  const std::string& name() const noexcept { return name_; }
  std::size_t series_count() const noexcept { return published_.load(std::memory_order_acquire); }

 private:
  friend class Registry;
  explicit MetricsShard(std::string name);

  struct Series {
    const Family* family = nullptr;
    std::string labels;                        // immutable once published
    std::unique_ptr<detail::Cell[]> cells;     // family->cells() cells, zeroed
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using Index = std::unordered_map<std::string, Series*, StringHash, std::equal_to<>>;

  detail::Cell* intern(const Family& family, MetricType want, std::string_view label_text);
  // Scrape side: calls fn(series) for every published series. Any thread.
  template <typename Fn>
  void for_each_published(Fn&& fn) const;

  std::string name_;
  std::array<std::atomic<Series*>, kMaxChunks> chunks_{};   // chunks_[k]: new Series[kChunkSize]
  std::atomic<std::size_t> published_{0};
  // Owner thread only:
  std::unordered_map<const Family*, Index> index_;
  std::unordered_map<const Family*, std::unique_ptr<Series>> overflow_;  // past kMaxSeriesPerShard
  bool warned_full_ = false;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry();

  // Registers a family, or returns the existing one of the same name and type (idempotent). A name
  // registered with another type, or an invalid metric name, is a programming error: logged, abort().
  // Families live as long as the Registry.
  const Family& counter(std::string name, std::string help);
  const Family& gauge(std::string name, std::string help);
  // `bounds`: finite, strictly increasing bucket upper bounds (+Inf is implicit).
  const Family& histogram(std::string name, std::string help, std::vector<double> bounds);

  // A gauge series whose value `fn` computes at each scrape (on the scraping thread, under the
  // registry's mutex: keep it cheap, don't call back into the Registry).
  void gauge_callback(std::string name, std::string help, std::span<const Label> labels,
                      std::function<double()> fn);

  // A new shard for one recording thread; the reference stays valid for the Registry's lifetime.
  MetricsShard& add_shard(std::string name);

  // The scrape: sums all shards and callbacks into the exposition text.
  std::string render(ExpositionFormat format = ExpositionFormat::Text004) const;

 private:
  Family& add_family(std::string name, std::string help, MetricType type, std::vector<double> bounds);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;  // by name
  std::vector<std::unique_ptr<MetricsShard>> shards_;
};

}  // namespace ambient::telemetry
