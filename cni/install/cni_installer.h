#pragma once
// CniInstaller: puts the ambient-cni plugin on the node and keeps it there (reference cni-charts.md
// "Install"; Istio's cni/pkg/install). install_options.h says what goes where in each mode.
//
// One pass (reconcile) makes the node match what we want, and writes only what differs:
//  1. the plugin binary in each target dir: copied (atomically, mode 0755) when absent or when its bytes
//     differ from CNI_BIN_DIR/ambient-cni; a binary that cannot be put in place stops the pass before any
//     config names it (a chained entry without its binary fails every pod's ADD);
//  2. the config: our entry in the primary file (a ".conf" becomes a ".conflist"), in our owned copy, or
//     our standalone file (conflist.h). Without a primary file yet, nothing is invented: the pass reports
//     Waiting (logged once) and the next change in the directory tries again. A primary that does not
//     parse is left untouched and reported (Failed, with the file, line and column); so is any I/O error.
// Passes run at start(), after file events (inotify on the config dir and the target dirs, debounced:
// install_options.h), and every recheck_interval (these also compare the binaries' bytes; passes after events
// skip a binary whose inode, size, mtime and mode did not move since it was found equal). Events our own
// writes cause are recognised (the file is still what we wrote) and ask for no pass. After the first complete install a pass that changes
// anything is a repair: counted in stats() and logged with what it fixed and what triggered it.
//
// Contract: construct, start() and stop() on the executor's thread (or before it runs); stats() and
// config_path() there too. stop() ends the watching; pending work finishes on the executor without
// touching this object (it holds its own state), so the installer may be destroyed right after stop().
// uninstall() stops first (so nothing repairs what it removes), then removes our entry from every config
// file of the directory and deletes our own files and the binaries; it is idempotent.
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "cni/install/install_options.h"
#include "common/base/result.h"

namespace ambient::cni::install {

struct CniInstallerStats {
  std::uint64_t passes = 0;     // reconcile passes run
  std::uint64_t installs = 0;   // Installed events (0 or 1 per start)
  std::uint64_t repairs = 0;    // passes after the install that changed something
  std::uint64_t failures = 0;   // passes that failed (files left as they were)
  std::uint64_t events = 0;     // inotify events that asked for a pass (before debouncing)
  bool installed = false;       // the last pass left everything in place
  bool waiting = false;         // the last pass found no primary config
  std::string config_path;      // where our entry lives now ("" until installed)
  std::string last_repair;      // what the last repair changed, "; "-joined
  std::string last_error;       // the last failure ("" after a good pass)
};

class CniInstaller {
 public:
  CniInstaller(boost::asio::any_io_executor ex, CniInstallOptions options);
  ~CniInstaller();
  CniInstaller(const CniInstaller&) = delete;
  CniInstaller& operator=(const CniInstaller&) = delete;

  // Runs the first pass right away (on the executor) and keeps watching. Io when inotify cannot be set up.
  Result<void> start();
  void stop();
  // Removes what install put in place (see above). Errors name the file; other files are still handled.
  Result<void> uninstall();

  const CniInstallerStats& stats() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace ambient::cni::install
