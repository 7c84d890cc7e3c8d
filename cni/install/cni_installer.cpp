#include "cni/install/cni_installer.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cni/install/conflist.h"
#include "cni/install/dir_watcher.h"
#include "cni/install/install_files.h"
#include "cni/install/json_pretty.h"
#include "cni/install/primary_config.h"

namespace ambient::cni::install {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr mode_t kBinaryMode = 0755;
constexpr mode_t kConfigMode = 0644;  // our own files (standalone); copies take the primary's mode

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += out.empty() ? l : "; " + l;
  return out;
}

void log_unexpected(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("cni install: unexpected exception: {}", ex.what());
  } catch (...) {
    spdlog::error("cni install: unexpected exception");
  }
}

// Where our config lives after a good pass, or why there is none yet.
struct ConfigOutcome {
  std::string config_path;  // set when in place
  std::string waiting;      // set when there is nothing to chain into yet
};

}  // namespace

struct CniInstaller::Impl {
  Impl(asio::any_io_executor executor, CniInstallOptions o)
      : ex(std::move(executor)), options(std::move(o)), entry(plugin_entry_json(options.entry)), wake(ex) {}

  asio::any_io_executor ex;
  CniInstallOptions options;
  json::object entry;
  asio::steady_timer wake;  // the control loop sleeps on it; request_pass() cancels it to wake the loop
  std::unique_ptr<DirWatcher> watcher;
  CniInstallerStats stats;
  bool started = false;
  bool stopped = false;
  bool installed_once = false;

  // A pass is due once `dirty` and the burst is over (debounce), or at `next_recheck`.
  bool dirty = false;
  Clock::time_point dirty_since, quiet_until, next_recheck;
  std::string trigger;  // the first event of the pending burst

  // target path -> (source stamp, target stamp) when they were last found equal: passes after file events skip
  // re-reading both while neither stamp moved. Periodic passes compare the bytes anyway: a same-size rewrite
  // in place within one timestamp tick (a few ms) of our check keeps the stamp.
  std::map<std::string, std::pair<FileStamp, FileStamp>> verified_binaries;
  // What our own writes left, so that the events they cause do not ask for another pass: config path -> the
  // text we wrote; config paths we deleted (a .conf converted into a .conflist). Binaries: verified_binaries.
  std::map<std::string, std::string> own_config_writes;
  std::set<std::string> own_removals;
  std::string last_primary;  // chained: the primary file name of the last good pass
  std::string logged_error;  // the last failure logged (a failure repeating every pass is logged once)

  std::string net_dir_file(std::string_view name) const { return options.mounted_cni_net_dir + "/" + std::string(name); }

  void request_pass(std::string why) {
    const auto now = Clock::now();
    if (!dirty) {
      dirty = true;
      dirty_since = now;
      trigger = std::move(why);
    }
    quiet_until = now + options.debounce_quiet;
    ++stats.events;
    wake.cancel();
  }

  Clock::time_point next_deadline() const {
    if (!dirty) return next_recheck;
    return std::min(quiet_until, dirty_since + options.debounce_max);
  }

  // Whether an event may change what a pass would do.
  bool relevant(const DirEvent& e) const {
    if (e.dir.empty() || (e.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) != 0) return true;
    if ((e.mask & IN_ISDIR) != 0 || e.name.starts_with(kTempFilePrefix)) return false;
    const std::string path = e.dir + "/" + e.name;
    if (e.dir == options.mounted_cni_net_dir && is_cni_config_name(e.name)) return !left_by_us(path, e.mask, false);
    const auto& targets = options.cni_bin_target_dirs;
    return e.name == kPluginType && std::find(targets.begin(), targets.end(), e.dir) != targets.end() &&
           !left_by_us(path, e.mask, true);
  }

  // True when `path` is still exactly as our last write or removal left it: the event is our own echo. Checked
  // when the event is read (microseconds after our write in practice); a file changed since is not ours.
  bool left_by_us(const std::string& path, std::uint32_t mask, bool binary) const {
    auto now = stat_file(path);
    if (!now) return false;
    if ((mask & (IN_DELETE | IN_MOVED_FROM)) != 0) return !*now && own_removals.count(path) != 0;
    if (!*now) return false;
    if (binary) {
      auto v = verified_binaries.find(path);
      return v != verified_binaries.end() && v->second.second == **now;
    }
    auto w = own_config_writes.find(path);
    if (w == own_config_writes.end() || static_cast<std::size_t>((*now)->size) != w->second.size()) return false;
    auto text = read_file(path, kMaxConfigFileBytes);
    return text && *text == w->second;
  }

  Result<void> write_config(const std::string& path, const std::string& text, mode_t mode, const FileStamp* owner) {
    AMBIENT_TRY(write_file_atomically(path, text, mode, owner));
    own_config_writes[path] = text;
    own_removals.erase(path);
    return ok();
  }

  void ensure_watches() {
    if (!watcher) return;
    std::vector<std::string> dirs = options.cni_bin_target_dirs;
    dirs.push_back(options.mounted_cni_net_dir);
    for (const auto& d : dirs) {
      if (watcher->watching(d)) continue;
      // A directory that does not exist yet is watched from the pass after it appears (the periodic check
      // finds it; the binary's target dirs are created by the pass itself).
      if (auto w = watcher->watch(d); !w) spdlog::debug("cni install: not watching yet: {}", w.error());
    }
  }

  Result<void> reconcile_binaries(std::vector<std::string>& changes, bool full) {
    const std::string src = source_binary_path(options);
    auto src_stamp = stat_file(src);
    if (!src_stamp) return std::move(src_stamp).error();
    if (!*src_stamp) return errorf(ErrorKind::NotFound, "plugin binary {} does not exist (CNI_BIN_DIR)", src);
    for (const auto& dir : options.cni_bin_target_dirs) {
      AMBIENT_TRY(make_dirs(dir, 0755));
      const std::string dst = dir + "/" + std::string(kPluginType);
      auto dst_stamp = stat_file(dst);
      if (!dst_stamp) return std::move(dst_stamp).error();
      if (*dst_stamp && !full) {
        auto v = verified_binaries.find(dst);
        if (v != verified_binaries.end() && v->second.first == **src_stamp && v->second.second == **dst_stamp) continue;
      }
      auto same = same_content(src, dst);
      if (!same) return std::move(same).error();
      if (!*same) {
        AMBIENT_TRY(copy_file_atomically(src, dst, kBinaryMode));
        changes.push_back(*dst_stamp ? fmt::format("binary {} differed from {}: replaced", dst, src)
                                     : fmt::format("binary {} missing: copied from {}", dst, src));
      } else if (((*dst_stamp)->mode & 07777) != kBinaryMode) {
        if (::chmod(dst.c_str(), kBinaryMode) != 0) {
          return errorf(ErrorKind::Io, "chmod 0755 {}: {}", dst, std::strerror(errno));
        }
        changes.push_back(fmt::format("binary {} had mode {:04o}: set 0755", dst, (*dst_stamp)->mode & 07777));
      }
      auto now_stamp = stat_file(dst);
      if (!now_stamp) return std::move(now_stamp).error();
      if (*now_stamp) verified_binaries[dst] = {**src_stamp, **now_stamp};
    }
    return ok();
  }

  // Our file holding only our plugin (CHAINED_CNI_PLUGIN=false).
  Result<ConfigOutcome> reconcile_standalone(std::vector<std::string>& changes) {
    auto dir = stat_file(options.mounted_cni_net_dir);
    if (!dir) return std::move(dir).error();
    if (!*dir) return ConfigOutcome{"", fmt::format("CNI config dir {} does not exist", options.mounted_cni_net_dir)};
    json::object list;
    list["cniVersion"] = kStandaloneCniVersion;
    list["name"] = kPluginType;
    json::array plugins;
    plugins.emplace_back(entry);
    list["plugins"] = std::move(plugins);
    const std::string want = pretty_json(list);
    const std::string path = net_dir_file(standalone_file_name(options));
    auto current = read_file(path, kMaxConfigFileBytes);
    if (!current && current.error().kind != ErrorKind::NotFound) return std::move(current).error();
    if (!current || *current != want) {
      AMBIENT_TRY(write_config(path, want, kConfigMode, nullptr));
      changes.push_back(fmt::format("standalone config {} {}: written", path, current ? "differed" : "missing"));
    }
    return ConfigOutcome{path, ""};
  }

  Result<ConfigOutcome> reconcile_chained(std::vector<std::string>& changes) {
    const std::string& dir = options.mounted_cni_net_dir;
    auto names = list_regular_files(dir);
    if (!names) {
      if (names.error().kind == ErrorKind::NotFound) return ConfigOutcome{"", fmt::format("CNI config dir {} does not exist", dir)};
      return std::move(names).error();
    }
    auto pick = pick_primary_config(*names, options.cni_conf_name, options.owned_config_file_name, dir);
    if (!pick) {
      if (pick.error().kind == ErrorKind::NotFound) return ConfigOutcome{"", pick.error().context};
      return std::move(pick).error();
    }
    const std::string primary_path = net_dir_file(*pick);
    auto stamp = stat_file(primary_path);
    if (!stamp) return std::move(stamp).error();
    if (!*stamp) return errorf(ErrorKind::NotFound, "{} disappeared while being read", primary_path);
    auto text = read_file(primary_path, kMaxConfigFileBytes);
    if (!text) return std::move(text).error();
    auto edit = insert_plugin(*pick, *text, entry);
    // insert_plugin's errors start with the file name; the operator needs its directory too.
    if (!edit) return errorf(edit.error().kind, "{}/{} (left as it is)", dir, edit.error().context);
    const std::size_t before = changes.size();
    ConfigOutcome out;
    if (options.owned_config) {
      const std::string owned_path = net_dir_file(options.owned_config_file_name);
      auto current = read_file(owned_path, kMaxConfigFileBytes);
      if (!current && current.error().kind != ErrorKind::NotFound) return std::move(current).error();
      if (!current || *current != edit->text) {
        AMBIENT_TRY(write_config(owned_path, edit->text, (*stamp)->mode, &**stamp));
        changes.push_back(current ? fmt::format("owned config {} differed from {} plus ambient-cni: rewritten", owned_path, *pick)
                                  : fmt::format("owned config {} missing: written from {}", owned_path, *pick));
      }
      out.config_path = owned_path;
      if (!last_primary.empty() && last_primary != *pick && changes.size() > before) {
        changes.insert(changes.begin() + static_cast<std::ptrdiff_t>(before),
                       fmt::format("primary CNI config is now {} (was {})", *pick, last_primary));
      }
      last_primary = *pick;
      return out;
    }
    out.config_path = net_dir_file(edit->file_name);
    if (edit->kind != EditKind::Unchanged) {
      AMBIENT_TRY(write_config(out.config_path, edit->text, (*stamp)->mode, &**stamp));
      if (edit->file_name != *pick) {
        // A single-plugin file became a list: libcni reads it only under a .conflist name.
        if (auto removed = remove_file(primary_path); !removed) return std::move(removed).error();
        own_removals.insert(primary_path);
        own_config_writes.erase(primary_path);
      }
      const std::string converted =
          edit->file_name != *pick ? fmt::format(" (converted to a list: {})", edit->file_name) : std::string();
      changes.push_back(edit->kind == EditKind::Inserted
                            ? fmt::format("ambient-cni entry missing from {}: inserted{}", primary_path, converted)
                            : fmt::format("ambient-cni entry in {} differed: rewritten{}", primary_path, converted));
      if (!last_primary.empty() && last_primary != *pick && last_primary != edit->file_name) {
        changes.insert(changes.begin() + static_cast<std::ptrdiff_t>(before),
                       fmt::format("primary CNI config is now {} (was {})", *pick, last_primary));
      }
    }
    last_primary = edit->file_name;
    return out;
  }

  void emit(InstallEvent e) {
    if (options.on_event) options.on_event(e);
  }

  // `full`: compare the binaries' bytes even when their stamps did not move (periodic passes).
  void run_pass(bool full) {
    ++stats.passes;
    InstallEvent ev;
    ev.trigger = std::exchange(trigger, std::string());
    ensure_watches();
    auto bins = reconcile_binaries(ev.changes, full);
    Result<ConfigOutcome> config = !bins ? Result<ConfigOutcome>(bins.error())
                                   : options.chained ? reconcile_chained(ev.changes)
                                                     : reconcile_standalone(ev.changes);
    ensure_watches();  // directories the pass created
    if (!config) {
      ++stats.failures;
      stats.installed = false;
      stats.waiting = false;  // a wait after this failure is reported again
      stats.last_error = config.error().message();
      if (stats.last_error != logged_error) {
        spdlog::warn("cni install: {} (trigger: {}); retrying on the next change or in {} s", stats.last_error,
                     ev.trigger, options.recheck_interval.count() / 1000);
        logged_error = stats.last_error;
      }
      if (!ev.changes.empty()) spdlog::info("cni install: {}", join(ev.changes));
      ev.kind = InstallEventKind::Failed;
      ev.error = stats.last_error;
      emit(std::move(ev));
      return;
    }
    stats.last_error.clear();
    logged_error.clear();
    if (!config->waiting.empty()) {
      stats.installed = false;
      stats.config_path.clear();
      if (!ev.changes.empty()) spdlog::info("cni install: {}", join(ev.changes));
      if (stats.waiting) return;  // reported when the wait began
      stats.waiting = true;
      spdlog::info("cni install: {}; waiting for the node's CNI to write its config (nothing chained yet)",
                   config->waiting);
      ev.kind = InstallEventKind::Waiting;
      ev.error = config->waiting;
      emit(std::move(ev));
      return;
    }
    stats.waiting = false;
    stats.installed = true;
    stats.config_path = config->config_path;
    if (!installed_once) {
      installed_once = true;
      ++stats.installs;
      spdlog::info("cni install: installed, config {}{}{}", stats.config_path, ev.changes.empty() ? "" : ": ",
                   join(ev.changes));
      ev.kind = InstallEventKind::Installed;
      emit(std::move(ev));
      return;
    }
    if (ev.changes.empty()) return;
    ++stats.repairs;
    stats.last_repair = join(ev.changes);
    spdlog::warn("cni install: repaired (trigger: {}): {}", ev.trigger, stats.last_repair);
    ev.kind = InstallEventKind::Repaired;
    emit(std::move(ev));
  }

  Result<void> uninstall() {
    std::vector<std::string> changes;
    std::optional<Error> first_error;
    const auto note_error = [&first_error](Error e) {
      spdlog::warn("cni install: uninstall: {}", e);
      if (!first_error) first_error = std::move(e);
    };
    const std::string& dir = options.mounted_cni_net_dir;
    auto names = list_regular_files(dir);
    if (!names && names.error().kind != ErrorKind::NotFound) note_error(names.error());
    for (const std::string& name : names ? *names : std::vector<std::string>()) {
      if (!is_cni_config_name(name)) continue;
      const std::string path = net_dir_file(name);
      // Our own files, by name: the owned copy (whatever the mode now: a copy left by an earlier run would
      // preempt the primary with stale content) and the standalone file.
      if (name == options.owned_config_file_name || (!options.chained && name == standalone_file_name(options))) {
        if (auto r = remove_file(path); !r) {
          note_error(std::move(r).error());
        } else if (*r) {
          changes.push_back(fmt::format("removed {}", path));
        }
        continue;
      }
      auto text = read_file(path, kMaxConfigFileBytes);
      if (!text) {
        if (text.error().kind != ErrorKind::NotFound) note_error(std::move(text).error());
        continue;
      }
      if (text->find(kPluginType) == std::string::npos) continue;  // cannot hold our entry
      auto edit = remove_plugin(name, *text);
      if (!edit) {
        note_error(errorf(edit.error().kind, "{}/{} (left as it is)", dir, edit.error().context));
        continue;
      }
      if (edit->kind != EditKind::Removed) continue;
      auto stamp = stat_file(path);
      const FileStamp* owner = stamp && *stamp ? &**stamp : nullptr;
      if (auto w = write_file_atomically(path, edit->text, owner ? owner->mode : kConfigMode, owner); !w) {
        note_error(std::move(w).error());
        continue;
      }
      changes.push_back(fmt::format("ambient-cni entry removed from {}", path));
    }
    for (const auto& target : options.cni_bin_target_dirs) {
      const std::string bin = target + "/" + std::string(kPluginType);
      if (auto r = remove_file(bin); !r) {
        note_error(std::move(r).error());
      } else if (*r) {
        changes.push_back(fmt::format("removed binary {}", bin));
      }
    }
    verified_binaries.clear();
    stats.installed = false;
    stats.config_path.clear();
    spdlog::info("cni install: uninstalled{}{}", changes.empty() ? " (nothing was installed)" : ": ", join(changes));
    InstallEvent ev;
    ev.kind = InstallEventKind::Uninstalled;
    ev.trigger = "uninstall";
    ev.changes = std::move(changes);
    if (first_error) ev.error = first_error->message();
    emit(std::move(ev));
    if (first_error) return std::move(*first_error);
    return ok();
  }
};

namespace {

// The loops hold the state by shared_ptr: they may outlive the CniInstaller (stop() then destruction while
// their cancelled operations are still queued on the executor).
asio::awaitable<void> control_loop(std::shared_ptr<CniInstaller::Impl> self) {
  for (;;) {
    if (self->stopped) co_return;
    const auto deadline = self->next_deadline();
    if (Clock::now() >= deadline) {
      const bool periodic = !self->dirty;
      if (periodic) self->trigger = "periodic re-check";
      self->dirty = false;
      self->run_pass(/*full=*/periodic);
      self->next_recheck = Clock::now() + self->options.recheck_interval;
      continue;
    }
    self->wake.expires_at(deadline);
    co_await self->wake.async_wait(asio::as_tuple(asio::use_awaitable));  // cancelled: an event came, or stop()
  }
}

asio::awaitable<void> watch_loop(std::shared_ptr<CniInstaller::Impl> self) {
  asio::steady_timer backoff(self->ex);
  for (;;) {
    auto batch = co_await self->watcher->next();
    if (self->stopped) co_return;
    if (!batch) {
      if (batch.error().kind == ErrorKind::Cancelled) co_return;
      spdlog::warn("cni install: {}; relying on the periodic re-check for 1 s", batch.error());
      backoff.expires_after(std::chrono::seconds(1));
      co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    for (const DirEvent& e : *batch) {
      if (!self->relevant(e)) continue;
      self->request_pass(e.dir.empty() ? std::string("inotify queue overflow")
                                       : fmt::format("{}/{}: {}", e.dir, e.name, describe_inotify_mask(e.mask)));
    }
  }
}

}  // namespace

CniInstaller::CniInstaller(asio::any_io_executor ex, CniInstallOptions options)
    : impl_(std::make_shared<Impl>(std::move(ex), std::move(options))) {}

CniInstaller::~CniInstaller() { stop(); }

Result<void> CniInstaller::start() {
  Impl& s = *impl_;
  if (s.started) return errorf(ErrorKind::InvalidArgument, "cni install: start() called twice");
  s.started = true;
  if (s.options.watch) {
    auto w = DirWatcher::create(s.ex);
    if (!w) return errorf(w.error().kind, "cni install: {}", w.error().context);
    s.watcher = std::move(*w);
    asio::co_spawn(s.ex, watch_loop(impl_), log_unexpected);
  }
  s.dirty = true;  // the first pass runs at once
  s.dirty_since = s.quiet_until = Clock::now();
  s.trigger = "start";
  asio::co_spawn(s.ex, control_loop(impl_), log_unexpected);
  return ok();
}

void CniInstaller::stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  s.wake.cancel();
  if (s.watcher) s.watcher->close();
}

Result<void> CniInstaller::uninstall() {
  stop();
  return impl_->uninstall();
}

const CniInstallerStats& CniInstaller::stats() const { return impl_->stats; }

}  // namespace ambient::cni::install
