#include "common/telemetry/access_log.h"

#include "common/base/json.h"

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <vector>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace ambient::telemetry {

namespace {

// ---- value encodings ------------------------------------------------------------------------------

// Rust's str Debug (what tracing prints for string fields in ztunnel's plain format).
void append_rust_debug(std::string& out, std::string_view v) {
  out += '"';
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\0': out += "\\0"; break;
      default:
        if (c < 0x20 || c == 0x7f) fmt::format_to(std::back_inserter(out), "\\u{{{:x}}}", c);
        else out += ch;
    }
  }
  out += '"';
}


// ---- one field list, two encodings ----------------------------------------------------------------

enum class Kind : std::uint8_t {
  Display,  // tracing `%value`: bare in plain, a string in JSON
  String,   // a string field: quoted in plain, a string in JSON
  Number,   // u64
};

struct Field {
  std::string_view key;
  Kind kind;
  std::string_view text;   // Display / String
  std::uint64_t number = 0;
};

std::string_view message_of(AccessEvent e) {
  switch (e) {
    case AccessEvent::Opened: return "connection opened";
    case AccessEvent::Complete: return "connection complete";
    case AccessEvent::Failed: return "connection failed";
  }
  return "connection complete";
}

std::string_view level_text(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    default: return "error";
  }
}

// The fields ztunnel records for this event, in its order; empty values are left out (ztunnel's
// Option fields that are None, and unknown workload metadata).
std::vector<Field> fields_of(const ConnectionRecord& r, std::string& duration_buf) {
  std::vector<Field> f;
  f.reserve(18);
  auto display = [&f](std::string_view k, const std::string& v) {
    if (!v.empty()) f.push_back(Field{k, Kind::Display, v});
  };
  auto str = [&f](std::string_view k, std::string_view v) {
    if (!v.empty()) f.push_back(Field{k, Kind::String, v});
  };
  if (r.event == AccessEvent::Failed) {
    display("src.addr", r.src_addr);
    display("dst.addr", r.dst_addr);
    str("direction", to_string(r.direction));
    str("error", r.error);
    return f;
  }
  display("src.addr", r.src_addr);
  str("src.workload", r.src_workload);
  str("src.namespace", r.src_namespace);
  str("src.identity", r.src_identity);
  str("src.cluster", r.src_cluster);
  display("dst.addr", r.dst_addr);
  display("dst.hbone_addr", r.dst_hbone_addr);
  str("dst.service", r.dst_service);
  str("dst.workload", r.dst_workload);
  str("dst.namespace", r.dst_namespace);
  str("dst.identity", r.dst_identity);
  str("dst.cluster", r.dst_cluster);
  str("direction", to_string(r.direction));
  if (r.event == AccessEvent::Opened) return f;
  f.push_back(Field{"bytes_sent", Kind::Number, {}, r.bytes_sent});
  f.push_back(Field{"bytes_recv", Kind::Number, {}, r.bytes_recv});
  duration_buf = fmt::format("{}ms", r.duration.count());
  str("duration", duration_buf);
  str("error", r.error);
  return f;
}

// ---- process-wide settings ------------------------------------------------------------------------

LogFormat format_from_env() {
  const char* v = std::getenv("LOG_FORMAT");
  return v != nullptr && std::string_view(v) == "json" ? LogFormat::Json : LogFormat::Plain;
}

std::atomic<LogFormat>& format_setting() {
  static std::atomic<LogFormat> f{format_from_env()};
  return f;
}

// emit() reads the logger through a raw atomic pointer (no lock, no refcount traffic per line). Every
// logger ever installed is kept alive here, so a worker still using the previous one is safe.
std::mutex g_keep_mu;
std::vector<std::shared_ptr<spdlog::logger>>& kept_loggers() {
  static std::vector<std::shared_ptr<spdlog::logger>> v;
  return v;
}
std::atomic<spdlog::logger*> g_logger{nullptr};

spdlog::logger* install(std::shared_ptr<spdlog::logger> lg) {
  std::lock_guard lock(g_keep_mu);
  kept_loggers().push_back(lg);
  g_logger.store(lg.get(), std::memory_order_release);
  return lg.get();
}

spdlog::logger* current_logger() {
  if (auto* l = g_logger.load(std::memory_order_acquire)) return l;
  static spdlog::logger* fallback = [] {
    auto lg = spdlog::get("access");
    if (!lg) {
      lg = std::make_shared<spdlog::logger>("access", std::make_shared<spdlog::sinks::stderr_sink_mt>());
      lg->set_pattern("%v");
      lg->set_level(spdlog::get_level());
      spdlog::register_logger(lg);
    }
    return install(lg);
  }();
  if (auto* l = g_logger.load(std::memory_order_acquire)) return l;  // a set_access_logger may have won
  return fallback;
}

}  // namespace

std::string_view to_string(Direction d) noexcept {
  return d == Direction::Inbound ? "inbound" : "outbound";
}

std::string format_timestamp(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(us / 1'000'000);
  auto frac = us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    --secs;
  }
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

spdlog::level::level_enum level_of(const ConnectionRecord& rec) noexcept {
  switch (rec.event) {
    case AccessEvent::Opened: return spdlog::level::debug;
    case AccessEvent::Failed: return spdlog::level::warn;
    case AccessEvent::Complete: return rec.error.empty() ? spdlog::level::info : spdlog::level::err;
  }
  return spdlog::level::info;
}

std::string format_plain(const ConnectionRecord& rec, std::chrono::system_clock::time_point now) {
  std::string duration;
  const auto fields = fields_of(rec, duration);
  std::string out;
  out.reserve(512);
  out += format_timestamp(now);
  out += '\t';
  out += level_text(level_of(rec));
  out += "\taccess\t";
  out += message_of(rec.event);
  out += '\t';  // ztunnel writes the message, then a tab, then the fields separated by spaces
  bool first = true;
  for (const Field& f : fields) {
    if (!first) out += ' ';
    first = false;
    out += f.key;
    out += '=';
    switch (f.kind) {
      case Kind::Display: out += f.text; break;
      case Kind::String: append_rust_debug(out, f.text); break;
      case Kind::Number: fmt::format_to(std::back_inserter(out), "{}", f.number); break;
    }
  }
  return out;
}

std::string format_json(const ConnectionRecord& rec, std::chrono::system_clock::time_point now) {
  std::string duration;
  const auto fields = fields_of(rec, duration);
  std::string out;
  out.reserve(640);
  out += "{\"level\":";
  json::append_string(out, level_text(level_of(rec)));
  out += ",\"time\":";
  json::append_string(out, format_timestamp(now));
  out += ",\"scope\":\"access\",\"message\":";
  json::append_string(out, message_of(rec.event));
  for (const Field& f : fields) {
    out += ',';
    json::append_string(out, f.key);
    out += ':';
    if (f.kind == Kind::Number) fmt::format_to(std::back_inserter(out), "{}", f.number);
    else json::append_string(out, f.text);
  }
  out += '}';
  return out;
}

LogFormat access_log_format() noexcept { return format_setting().load(std::memory_order_relaxed); }

void set_access_log_format(LogFormat format) noexcept { format_setting().store(format, std::memory_order_relaxed); }

std::shared_ptr<spdlog::logger> access_logger() {
  spdlog::logger* cur = current_logger();
  std::lock_guard lock(g_keep_mu);
  for (const auto& l : kept_loggers()) {
    if (l.get() == cur) return l;
  }
  return nullptr;  // unreachable: every installed logger is kept
}

void set_access_logger(std::shared_ptr<spdlog::logger> logger) {
  spdlog::drop(logger->name());
  spdlog::register_logger(logger);
  install(std::move(logger));
}

void emit(const ConnectionRecord& rec) {
  spdlog::logger& lg = *current_logger();
  const auto lvl = level_of(rec);
  if (!lg.should_log(lvl)) return;
  const auto now = std::chrono::system_clock::now();
  const std::string line = access_log_format() == LogFormat::Json ? format_json(rec, now) : format_plain(rec, now);
  lg.log(lvl, spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace ambient::telemetry
