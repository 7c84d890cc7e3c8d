#pragma once
// Helpers of the cni/kube suites: driving an io_context on the test thread until a condition holds, and a
// recorder of informer handler calls.
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>

#include "cni/kube/informer.h"
#include "cni/kube/object_meta.h"

namespace ambient::cni::kube::test_support {

// Runs `io` on this thread in slices of 5 ms until `pred` holds (checked between slices, on this thread: no
// locking needed for state the handlers change) or `timeout` passes.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& pred,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (io.stopped()) io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Every handler call, as "upsert ns/name rv=N", "delete ns/name", "synced".
struct Recorder {
  std::vector<std::string> calls;
  std::map<std::string, int> upserts;  // by key
  std::map<std::string, int> deletes;  // by key
  int synced = 0;

  static std::string key(const boost::json::object& o) {
    auto meta = read_object_meta(o, "object");
    return meta ? object_key(meta->namespace_, meta->name) : "?";
  }

  Informer::Handler handler() {
    Informer::Handler h;
    h.on_upsert = [this](const boost::json::object& o) {
      const std::string k = key(o);
      ++upserts[k];
      calls.push_back("upsert " + k + " rv=" + std::string(resource_version_of(o)));
    };
    h.on_delete = [this](const boost::json::object& o) {
      const std::string k = key(o);
      ++deletes[k];
      calls.push_back("delete " + k);
    };
    h.on_synced = [this] {
      ++synced;
      calls.push_back("synced");
    };
    return h;
  }

  int upserts_of(const std::string& k) const {
    auto it = upserts.find(k);
    return it == upserts.end() ? 0 : it->second;
  }
  int deletes_of(const std::string& k) const {
    auto it = deletes.find(k);
    return it == deletes.end() ? 0 : it->second;
  }
};

}  // namespace ambient::cni::kube::test_support
