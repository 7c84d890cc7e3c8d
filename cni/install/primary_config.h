#pragma once
// Which file of the CNI config directory is the node's primary network configuration, without I/O.
//
// libcni (ConfFiles + sort.Strings, as kubelet, containerd and CRI-O use it) reads the files whose
// extension is ".conf", ".conflist" or ".json" and takes the first by byte-wise name order. We chain into
// that file, or into the one CNI_CONF_NAME names. Our own file (ISTIO_OWNED_CNI_CONFIG's copy, which sorts
// before the primary on purpose) is never the primary: copying it would copy ourselves.
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"

namespace ambient::cni::install {

// True for "*.conf", "*.conflist", "*.json" (the extension after the last '.', as Go's filepath.Ext).
bool is_cni_config_name(std::string_view name);

// `names`: the regular files of `dir` (any order; `dir` only names the directory in errors).
// `conf_name` (CNI_CONF_NAME) when not empty: that file; when it is absent, "<x>.conflist" for a "<x>.conf"
// name and "<x>.conf" for a "<x>.conflist" one (the installer renames a chained .conf into a .conflist).
// Otherwise the first config name in byte order other than `skip_name`.
// NotFound: "no CNI config file (*.conf, *.conflist, *.json) in /host/etc/cni/net.d" or
// "CNI_CONF_NAME 10-calico.conflist: no such file in /host/etc/cni/net.d".
Result<std::string> pick_primary_config(const std::vector<std::string>& names, std::string_view conf_name,
                                        std::string_view skip_name, std::string_view dir);

}  // namespace ambient::cni::install
