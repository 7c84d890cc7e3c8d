#include "cni/install/install_options.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "cni/install/install_files.h"

namespace ambient::cni::install {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Result<std::string> own_binary_dir() {
  std::array<char, 4096> buf{};
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n < 0) return errorf(ErrorKind::Io, "readlink /proc/self/exe: {}", std::strerror(errno));
  return dir_of(std::string(buf.data(), static_cast<std::size_t>(n)));
}

Error bad(const config::Options& o, std::string_view flag, std::string_view env, std::string_view why) {
  return errorf(ErrorKind::InvalidArgument, "--{} ({}, from {}): '{}' {}", flag, env, o.source(flag), o.get(flag), why);
}

Result<std::string> file_name_option(const config::Options& o, std::string_view flag, std::string_view env) {
  const std::string& v = o.get(flag);
  if (v.find('/') != std::string::npos || v == "." || v == "..") return bad(o, flag, env, "is not a file name (no '/')");
  return v;
}

}  // namespace

std::string_view to_string(InstallEventKind kind) noexcept {
  switch (kind) {
    case InstallEventKind::Installed: return "installed";
    case InstallEventKind::Repaired: return "repaired";
    case InstallEventKind::Waiting: return "waiting";
    case InstallEventKind::Failed: return "failed";
    case InstallEventKind::Uninstalled: return "uninstalled";
  }
  return "?";
}

std::string standalone_file_name(const CniInstallOptions& o) {
  return o.cni_conf_name.empty() ? std::string(kStandaloneFileName) : o.cni_conf_name;
}

std::string source_binary_path(const CniInstallOptions& o) { return o.cni_bin_dir + "/" + std::string(kPluginType); }

void add_install_options(config::Options& o) {
  o.add({"install-cni", "INSTALL_CNI", "false", "install the ambient-cni plugin and chain it into the node's CNI config", true})
      .add({"cni-bin-dir", "CNI_BIN_DIR", "", "directory holding the ambient-cni binary to install (default: this program's directory)"})
      .add({"cni-bin-target-dirs", "CNI_BIN_TARGET_DIRS", std::string(kDefaultTargetDir),
            "comma-separated host CNI bin directories the plugin binary is copied into"})
      .add({"mounted-cni-net-dir", "MOUNTED_CNI_NET_DIR", std::string(kDefaultNetDir), "the host's CNI config directory"})
      .add({"cni-conf-name", "CNI_CONF_NAME", "", "the primary CNI config file to chain into (default: the first by name)"})
      .add({"chained-cni-plugin", "CHAINED_CNI_PLUGIN", "true",
            "chain into the primary CNI's config (false: write a standalone config file)", true})
      .add({"istio-owned-cni-config", "ISTIO_OWNED_CNI_CONFIG", "false",
            "write our own copy of the primary config (with our plugin) instead of editing the primary file", true})
      .add({"istio-owned-cni-config-filename", "ISTIO_OWNED_CNI_CONFIG_FILENAME", std::string(kDefaultOwnedFileName),
            "name of that copy (must sort before the primary's)"});
}

Result<CniInstallOptions> install_options_from(const config::Options& o, PluginEntry entry) {
  CniInstallOptions out;
  auto install = o.boolean("install-cni");
  if (!install) return std::move(install).error();
  out.install_cni = *install;
  auto chained = o.boolean("chained-cni-plugin");
  if (!chained) return std::move(chained).error();
  out.chained = *chained;
  auto owned = o.boolean("istio-owned-cni-config");
  if (!owned) return std::move(owned).error();
  out.owned_config = *owned;

  out.cni_bin_dir = o.get("cni-bin-dir");
  if (out.cni_bin_dir.empty()) {
    auto dir = own_binary_dir();
    if (!dir) return errorf(ErrorKind::Io, "--cni-bin-dir (CNI_BIN_DIR) unset and {}", dir.error().context);
    out.cni_bin_dir = std::move(*dir);
  }

  out.cni_bin_target_dirs.clear();
  std::string_view dirs = o.get("cni-bin-target-dirs");
  while (!dirs.empty()) {
    const auto comma = dirs.find(',');
    const std::string_view item = trim(dirs.substr(0, comma));
    dirs = comma == std::string_view::npos ? std::string_view() : dirs.substr(comma + 1);
    if (item.empty()) continue;
    if (item.front() != '/') return bad(o, "cni-bin-target-dirs", "CNI_BIN_TARGET_DIRS", "holds a relative path");
    out.cni_bin_target_dirs.emplace_back(item);
  }
  if (out.cni_bin_target_dirs.empty()) return bad(o, "cni-bin-target-dirs", "CNI_BIN_TARGET_DIRS", "names no directory");

  out.mounted_cni_net_dir = o.get("mounted-cni-net-dir");
  if (out.mounted_cni_net_dir.empty() || out.mounted_cni_net_dir.front() != '/') {
    return bad(o, "mounted-cni-net-dir", "MOUNTED_CNI_NET_DIR", "is not an absolute path");
  }

  auto conf_name = file_name_option(o, "cni-conf-name", "CNI_CONF_NAME");
  if (!conf_name) return std::move(conf_name).error();
  out.cni_conf_name = std::move(*conf_name);
  auto owned_name = file_name_option(o, "istio-owned-cni-config-filename", "ISTIO_OWNED_CNI_CONFIG_FILENAME");
  if (!owned_name) return std::move(owned_name).error();
  out.owned_config_file_name = std::move(*owned_name);
  if (!out.owned_config_file_name.ends_with(".conflist") || out.owned_config_file_name.size() == 9) {
    return bad(o, "istio-owned-cni-config-filename", "ISTIO_OWNED_CNI_CONFIG_FILENAME",
               "must be a *.conflist name (libcni reads other names as a single plugin)");
  }
  if (out.owned_config_file_name == out.cni_conf_name) {
    return bad(o, "istio-owned-cni-config-filename", "ISTIO_OWNED_CNI_CONFIG_FILENAME",
               "is also CNI_CONF_NAME: our copy cannot replace the primary file");
  }
  out.entry = std::move(entry);
  return out;
}

}  // namespace ambient::cni::install
