#include "cni/install/primary_config.h"

#include <algorithm>

namespace ambient::cni::install {

bool is_cni_config_name(std::string_view name) {
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos) return false;
  const std::string_view ext = name.substr(dot);
  return ext == ".conf" || ext == ".conflist" || ext == ".json";
}

Result<std::string> pick_primary_config(const std::vector<std::string>& names, std::string_view conf_name,
                                        std::string_view skip_name, std::string_view dir) {
  const auto present = [&names](std::string_view n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  if (!conf_name.empty()) {
    if (present(conf_name)) return std::string(conf_name);
    if (conf_name.ends_with(".conf") && present(std::string(conf_name) + "list")) return std::string(conf_name) + "list";
    if (conf_name.ends_with(".conflist")) {
      const std::string conf(conf_name.substr(0, conf_name.size() - 4));
      if (present(conf)) return conf;
    }
    return errorf(ErrorKind::NotFound, "CNI_CONF_NAME {}: no such file in {}", conf_name, dir);
  }
  const std::string* best = nullptr;
  for (const std::string& n : names) {
    if (!is_cni_config_name(n) || n == skip_name) continue;
    if (best == nullptr || n < *best) best = &n;  // std::string compares bytes, as Go's sort.Strings
  }
  if (best == nullptr) return errorf(ErrorKind::NotFound, "no CNI config file (*.conf, *.conflist, *.json) in {}", dir);
  return *best;
}

}  // namespace ambient::cni::install
