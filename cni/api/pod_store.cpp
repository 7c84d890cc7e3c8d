#include "cni/api/pod_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include "cni/api/files.h"
#include "cni/api/json_fields.h"
#include "cni/api/pod_json.h"
#include "common/net/fd.h"

namespace ambient::cni {

namespace json = boost::json;

namespace {

constexpr std::int64_t kFileVersion = 1;

// `err` is errno, read by the caller before anything else could change it.
Error errno_error(std::string_view op, const std::string& path, int err) {
  Error e = errorf(ErrorKind::Io, "pod store {}: {}: {}", path, op, std::strerror(err));
  e.code = err;
  return e;
}

Result<void> write_all(int fd, std::string_view data, const std::string& path) {
  if (const int err = cni::write_all(fd, data); err != 0) return errno_error("write", path, err);
  return ok();
}

// Reads the whole file if it has at most `max_bytes`. nullopt when it does not exist.
Result<std::optional<std::string>> read_file(const std::string& path, std::size_t max_bytes) {
  net::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::optional<std::string>();
    return errno_error("open", path, errno);
  }
  std::string text;
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("read", path, errno);
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > max_bytes) {
      return errorf(ErrorKind::ResourceExhausted, "pod store {}: file larger than {} bytes", path, max_bytes);
    }
  }
  return std::optional<std::string>(std::move(text));
}

}  // namespace

PodStore::PodStore(PodStoreOptions options) : options_(std::move(options)) {}

Result<void> PodStore::load() {
  records_.clear();
  auto text = read_file(options_.path, options_.max_file_bytes);
  if (!text) return std::move(text).error();
  if (!*text) return ok();  // never written: no pods yet

  auto prefixed = [this](const Error& e) { return errorf(e.kind, "pod store {}: {}", options_.path, e.context); };
  auto doc = parse_json(**text, "JSON");
  if (!doc) return prefixed(doc.error());
  auto reader = JsonObjectReader::open(*doc, "");
  if (!reader) return prefixed(reader.error());
  if (auto known = reader->reject_unknown_keys({"version", "pods"}); !known) return prefixed(known.error());
  auto version = reader->required_int64("version");
  if (!version) return prefixed(version.error());
  if (*version != kFileVersion) {
    return errorf(ErrorKind::Unsupported, "pod store {}: version {} is not the one this agent reads ({})",
                  options_.path, *version, kFileVersion);
  }
  auto pods = reader->array("pods", true);
  if (!pods) return prefixed(pods.error());
  if ((*pods)->size() > options_.max_pods) {
    return errorf(ErrorKind::ResourceExhausted, "pod store {}: {} pods, more than the {} allowed", options_.path,
                  (*pods)->size(), options_.max_pods);
  }
  std::map<std::string, PodRecord, std::less<>> loaded;
  for (std::size_t i = 0; i < (*pods)->size(); ++i) {
    const std::string where = fmt::format("pods[{}]", i);
    auto record = pod_record_from_json((**pods)[i], where);
    if (!record) return prefixed(record.error());
    const std::string uid = record->spec.uid;
    if (!loaded.emplace(uid, std::move(*record)).second) {
      return errorf(ErrorKind::InvalidArgument, "pod store {}: {}.spec.uid: '{}' appears twice", options_.path,
                    where, uid);
    }
  }
  records_ = std::move(loaded);
  return ok();
}

Result<void> PodStore::upsert(PodRecord record) {
  if (auto valid = validate_pod_spec(record.spec); !valid) return std::move(valid).error();
  auto it = records_.find(record.spec.uid);
  if (it == records_.end()) {
    if (records_.size() >= options_.max_pods) {
      return errorf(ErrorKind::ResourceExhausted, "pod store {}: already {} pods, the limit; pod {} not recorded",
                    options_.path, records_.size(), record.spec.uid);
    }
    const std::string uid = record.spec.uid;
    records_.emplace(uid, std::move(record));
    auto written = write_file();
    if (!written) records_.erase(uid);
    return written;
  }
  PodRecord previous = std::exchange(it->second, std::move(record));
  auto written = write_file();
  if (!written) it->second = std::move(previous);
  return written;
}

Result<bool> PodStore::remove(std::string_view uid) {
  auto it = records_.find(uid);
  if (it == records_.end()) return false;
  auto node = records_.extract(it);
  auto written = write_file();
  if (!written) {
    records_.insert(std::move(node));
    return std::move(written).error();
  }
  return true;
}

const PodRecord* PodStore::get(std::string_view uid) const {
  auto it = records_.find(uid);
  return it == records_.end() ? nullptr : &it->second;
}

std::vector<PodRecord> PodStore::all() const {
  std::vector<PodRecord> out;
  out.reserve(records_.size());
  for (const auto& [uid, record] : records_) out.push_back(record);
  return out;
}

std::string PodStore::to_json() const {
  json::array pods;
  pods.reserve(records_.size());
  for (const auto& [uid, record] : records_) pods.emplace_back(pod_record_to_json(record));
  json::object doc;
  doc["version"] = kFileVersion;
  doc["pods"] = std::move(pods);
  return json::serialize(doc);
}

Result<void> PodStore::write_file() const {
  std::string text = to_json();
  text += '\n';
  if (text.size() > options_.max_file_bytes) {
    return errorf(ErrorKind::ResourceExhausted, "pod store {}: the file would be {} bytes, more than the {} allowed",
                  options_.path, text.size(), options_.max_file_bytes);
  }
  const std::string dir = parent_dir(options_.path);
  if (auto made = make_dirs(dir); !made) {
    return errorf(ErrorKind::Io, "pod store {}: {}", options_.path, made.error().context);
  }
  const std::string tmp = options_.path + ".tmp";
  net::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return errno_error("open", tmp, errno);
  auto fail = [&tmp](Error e) {
    ::unlink(tmp.c_str());
    return e;
  };
  if (auto w = write_all(fd.get(), text, tmp); !w) return fail(std::move(w).error());
  if (::fsync(fd.get()) != 0) return fail(errno_error("fsync", tmp, errno));
  if (::close(fd.release()) != 0) return fail(errno_error("close", tmp, errno));
  if (::rename(tmp.c_str(), options_.path.c_str()) != 0) return fail(errno_error("rename", tmp, errno));
  // The rename is durable only once the directory is synced.
  net::UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.valid()) ::fsync(dir_fd.get());
  return ok();
}

}  // namespace ambient::cni
