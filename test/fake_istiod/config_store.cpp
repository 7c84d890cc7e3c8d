#include "test/fake_istiod/config_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "common/state/local_config.h"
#include "common/state/resource.h"

namespace fake_istiod {

using ambient::ErrorKind;
using ambient::errorf;
namespace fs = std::filesystem;

const ResourceMap* Resources::of_type(std::string_view type_url) const {
  if (type_url == kAddressType) return &addresses;
  if (type_url == kAuthorizationType) return &authorizations;
  return nullptr;
}

std::string resource_version(std::string_view bytes) {
  std::uint64_t h = 14695981039346656037ull;  // FNV-1a 64
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

namespace {

// Deterministic: map fields (Workload.services) in key order, so equal messages give equal bytes.
std::string serialize(const google::protobuf::MessageLite& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream zero_copy(&out);
    google::protobuf::io::CodedOutputStream coded(&zero_copy);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

std::string address_name(const istio::workload::Address& a) {
  return a.has_workload() ? a.workload().uid() : ambient::state::service_key(a.service());
}

ambient::Result<void> add(ResourceMap& map, std::string name, const google::protobuf::MessageLite& m,
                          const std::string& file) {
  std::string bytes = serialize(m);
  Resource r{resource_version(bytes), std::move(bytes)};
  if (!map.emplace(name, std::move(r)).second)
    return errorf(ErrorKind::InvalidArgument, "{}: resource \"{}\" is defined twice (in this or an earlier file)",
                  file, name);
  return {};
}

}  // namespace

ConfigStore::ConfigStore(std::string dir) : dir_(std::move(dir)), current_(std::make_shared<Resources>()) {}

std::shared_ptr<const Resources> ConfigStore::current() const {
  std::lock_guard lock(mu_);
  return current_;
}

ambient::Result<std::string> ConfigStore::fingerprint() const {
  std::error_code ec;
  std::vector<std::string> lines;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (e.path().extension() != ".yaml") continue;
    struct stat st {};
    if (::stat(e.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    lines.push_back(fmt::format("{} {}.{} {}", e.path().filename().string(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                                st.st_size));
  }
  if (ec) return errorf(ErrorKind::Io, "config dir {}: {}", dir_, ec.message());
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

ambient::Result<Resources> ConfigStore::read_all() const {
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.path().extension() == ".yaml" && e.is_regular_file()) files.push_back(e.path());
  if (ec) return errorf(ErrorKind::Io, "config dir {}: {}", dir_, ec.message());
  std::sort(files.begin(), files.end());
  Resources out;
  for (const auto& f : files) {
    auto cfg = ambient::state::load_local_config(f.string());
    if (!cfg) return std::move(cfg).error();
    for (const auto& a : cfg->addresses)
      if (auto r = add(out.addresses, address_name(a), a, f.string()); !r) return std::move(r).error();
    for (const auto& p : cfg->policies)
      if (auto r = add(out.authorizations, ambient::state::policy_key(p), p, f.string()); !r)
        return std::move(r).error();
  }
  return out;
}

ambient::Result<void> ConfigStore::load() {
  auto r = poll();
  if (!r) return std::move(r).error();
  return {};
}

ambient::Result<bool> ConfigStore::poll() {
  if (dir_.empty()) return false;
  auto fp = fingerprint();
  if (!fp) return std::move(fp).error();
  if (last_fingerprint_ && *fp == *last_fingerprint_) return false;
  last_fingerprint_ = *fp;  // an error is reported once per change, not every poll
  auto next = read_all();
  if (!next) return std::move(next).error();
  std::lock_guard lock(mu_);
  auto same = [](const ResourceMap& a, const ResourceMap& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
      return x.first == y.first && x.second.version == y.second.version;
    });
  };
  if (current_->generation != 0 && same(current_->addresses, next->addresses) &&
      same(current_->authorizations, next->authorizations))
    return false;
  next->generation = current_->generation + 1;
  current_ = std::make_shared<Resources>(std::move(*next));
  return true;
}

}  // namespace fake_istiod
