#pragma once
// create_scratch_netns(): a new, empty network namespace that lives exactly as long as the returned fd (it
// has no name under /var/run/netns and no process in it). InpodRules applies its rules there once per set of
// options to learn how this machine's tools print them back, which is what a pod's state is compared with.
// The unshare() happens on a short-lived thread of its own, so no caller thread ever changes netns.
// Needs CAP_SYS_ADMIN.
#include "common/base/result.h"
#include "common/net/fd.h"

namespace ambient::cni {

Result<net::UniqueFd> create_scratch_netns();

}  // namespace ambient::cni
