#pragma once
// The installer's settings (Istio's install-cni names, flag > env > default), read like
// common/control_plane/settings.h:
//
//   config::Options o;
//   install::add_install_options(o);                 // INSTALL_CNI, CNI_BIN_DIR, ... ISTIO_OWNED_CNI_CONFIG_FILENAME
//   AMBIENT_TRY(o.parse(argc, argv));
//   auto install = install::install_options_from(o, entry);   // entry: agent socket, log level, excluded namespaces
//   if (install->install_cni) { CniInstaller installer(ex, *install); installer.start(); }
//
// Modes (reference cni-charts.md "Install"):
//  - chained (CHAINED_CNI_PLUGIN=true, the default): our entry goes last into the primary CNI's config file
//    (primary_config.h picks it), or, with ISTIO_OWNED_CNI_CONFIG=true, into our own copy of it named
//    ISTIO_OWNED_CNI_CONFIG_FILENAME, which sorts before the primary so the runtime reads ours; the primary
//    file is then never written.
//  - standalone (CHAINED_CNI_PLUGIN=false): a config file of our own holding only our plugin, named
//    CNI_CONF_NAME or kStandaloneFileName (for a meta-plugin such as multus to delegate to).
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "cni/install/conflist.h"
#include "common/base/config.h"
#include "common/base/result.h"

namespace ambient::cni::install {

inline constexpr std::string_view kDefaultTargetDir = "/host/opt/cni/bin";
inline constexpr std::string_view kDefaultNetDir = "/host/etc/cni/net.d";
inline constexpr std::string_view kDefaultOwnedFileName = "02-ambient-cni.conflist";
// Istio's standalone name is "YYY-istio-cni.conf": it sorts after the usual primaries.
inline constexpr std::string_view kStandaloneFileName = "YYY-ambient-cni.conflist";
// Config files written by the standalone mode carry this cniVersion (cni_protocol.h supports it).
inline constexpr std::string_view kStandaloneCniVersion = "1.0.0";

enum class InstallEventKind {
  Installed,    // the first pass that found or put everything in place (binary + config)
  Repaired,     // a later pass found something missing or changed and put it back (changes say what)
  Waiting,      // no primary config yet (chained mode): nothing chained; reported once per wait
  Failed,       // a pass failed (malformed primary config, I/O error); files left as they were; retried
  Uninstalled,  // uninstall() finished (changes say what it removed)
};

std::string_view to_string(InstallEventKind kind) noexcept;

struct InstallEvent {
  InstallEventKind kind = InstallEventKind::Installed;
  std::string trigger;               // what started the pass: "start", "10-flannel.conflist: IN_MOVED_TO", "periodic re-check"
  std::vector<std::string> changes;  // what the pass did, one line each ("binary /host/opt/cni/bin/ambient-cni missing: copied")
  std::string error;                 // Failed: the error; Waiting: why
};

struct CniInstallOptions {
  bool install_cni = false;                   // INSTALL_CNI: whether the caller runs the installer at all
  std::string cni_bin_dir;                    // CNI_BIN_DIR: where our ambient-cni binary is (default: our own dir)
  std::vector<std::string> cni_bin_target_dirs{std::string(kDefaultTargetDir)};  // CNI_BIN_TARGET_DIRS
  std::string mounted_cni_net_dir{kDefaultNetDir};  // MOUNTED_CNI_NET_DIR: the host's CNI config dir
  std::string cni_conf_name;                  // CNI_CONF_NAME: the primary config's name; empty = pick it
  bool chained = true;                        // CHAINED_CNI_PLUGIN
  bool owned_config = false;                  // ISTIO_OWNED_CNI_CONFIG
  std::string owned_config_file_name{kDefaultOwnedFileName};  // ISTIO_OWNED_CNI_CONFIG_FILENAME
  PluginEntry entry;                          // our entry's fields: from the caller (the agent's own settings)

  // Watching. Events are debounced: a pass runs once no event came for `debounce_quiet`, and at the latest
  // `debounce_max` after the first one of a burst. `recheck_interval`: the safety net when an event is
  // missed (a directory that did not exist yet, a filesystem without inotify). `watch` false: checks only.
  std::chrono::milliseconds debounce_quiet{100};
  std::chrono::milliseconds debounce_max{1000};
  std::chrono::milliseconds recheck_interval{30000};
  bool watch = true;

  // Called on the installer's executor after each pass that reports something (tests, metrics).
  std::function<void(const InstallEvent&)> on_event;
};

// The file name our config lives under in standalone mode.
std::string standalone_file_name(const CniInstallOptions& o);

// Declares INSTALL_CNI, CNI_BIN_DIR, CNI_BIN_TARGET_DIRS, MOUNTED_CNI_NET_DIR, CNI_CONF_NAME,
// CHAINED_CNI_PLUGIN, ISTIO_OWNED_CNI_CONFIG, ISTIO_OWNED_CNI_CONFIG_FILENAME (and their --flags).
void add_install_options(config::Options& o);

// The values of a parsed `o`, with `entry` as our entry's fields. CNI_BIN_DIR defaults to the directory of
// /proc/self/exe. InvalidArgument naming the flag or variable: a bad boolean, an empty or relative target
// dir, a file name with a '/', an owned file name that is not "*.conflist" (libcni would read it as a
// single plugin) or equal to CNI_CONF_NAME.
Result<CniInstallOptions> install_options_from(const config::Options& o, PluginEntry entry);

// "/a/b/ambient-cni" for the binary the installer copies.
std::string source_binary_path(const CniInstallOptions& o);

}  // namespace ambient::cni::install
