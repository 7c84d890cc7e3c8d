#include "test/support/fake_kube_api.h"

#include <algorithm>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <span>
#include <stdexcept>
#include <thread>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <openssl/x509v3.h>

#include "cni/kube/kube_tls.h"
#include "common/base/beast_http_parser.h"
#include "common/base/url.h"
#include "cni/kube/watch_event.h"
#include "common/tls/pki.h"
#include "common/tls/tls_stream.h"
#include "test/support/temp_dir.h"

namespace ambient::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using asio::awaitable;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using cni::kube::WatchEvent;
using Resource = FakeKubeApi::Resource;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxRequestHead = 64 * 1024;
constexpr std::size_t kMaxRequestBody = 1024 * 1024;
constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::int64_t kDefaultWatchSeconds = 1800;

[[noreturn]] void fail_setup(const std::string& what) { throw std::runtime_error("FakeKubeApi: " + what); }

template <typename T>
T must(Result<T> r, std::string_view what) {
  if (!r) fail_setup(fmt::format("{}: {}", what, r.error()));
  return std::move(*r);
}


std::map<std::string, std::string> parse_query(std::string_view query) {
  std::map<std::string, std::string> params;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    params[form_decode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : form_decode(pair.substr(eq + 1));
  }
  return params;
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  }
  return parts;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 410: return "Gone";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string_view status_reason(int status) {
  switch (status) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 410: return "Expired";
    case 415: return "UnsupportedMediaType";
    case 429: return "TooManyRequests";
    case 503: return "ServiceUnavailable";
    default: return "InternalError";
  }
}

json::object status_object(int code, std::string_view message) {
  return json::object{{"kind", "Status"},       {"apiVersion", "v1"},         {"metadata", json::object()},
                      {"status", "Failure"},    {"message", message},         {"reason", status_reason(code)},
                      {"code", code}};
}

std::string_view kind_of(Resource r) { return r == Resource::Pods ? "Pod" : "Namespace"; }

// RFC 7386 JSON merge patch.
json::value merge_patch(json::value target, const json::value& patch) {
  if (!patch.is_object()) return patch;
  if (!target.is_object()) target = json::object();
  json::object& t = target.as_object();
  for (const auto& [key, value] : patch.as_object()) {
    if (value.is_null()) {
      t.erase(key);
    } else {
      json::value* existing = t.if_contains(key);
      t[key] = merge_patch(existing != nullptr ? *existing : json::value(nullptr), value);
    }
  }
  return target;
}

json::object& metadata_of(json::object& o) {
  json::value& m = o["metadata"];
  if (!m.is_object()) m = json::object();
  return m.as_object();
}

std::string string_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::string meta_field(const json::object& o, std::string_view key) {
  const json::value* m = o.if_contains("metadata");
  return m != nullptr && m->is_object() ? string_field(m->as_object(), key) : std::string();
}

std::string node_of(const json::object& o) {
  const json::value* spec = o.if_contains("spec");
  return spec != nullptr && spec->is_object() ? string_field(spec->as_object(), "nodeName") : std::string();
}

std::string key_of(Resource r, std::string_view ns, std::string_view name) {
  return r == Resource::Pods ? fmt::format("{}/{}", ns, name) : std::string(name);
}

std::string chunk(std::string_view data) { return fmt::format("{:x}\r\n{}\r\n", data.size(), data); }

// Which objects a list or watch selects (fieldSelector + the namespace of the path).
struct Filter {
  std::optional<std::string> namespace_;
  std::optional<std::string> node;
  std::optional<std::string> name;

  bool matches(const json::object& o) const {
    if (namespace_ && meta_field(o, "namespace") != *namespace_) return false;
    if (name && meta_field(o, "name") != *name) return false;
    if (node && node_of(o) != *node) return false;
    return true;
  }
};

// "spec.nodeName=n1,metadata.name=x" (also "=="); an unsupported field -> the message for a 400.
std::optional<std::string> parse_field_selector(std::string_view selector, Filter& filter) {
  while (!selector.empty()) {
    const auto comma = selector.find(',');
    std::string_view term = selector.substr(0, comma);
    selector = comma == std::string_view::npos ? std::string_view() : selector.substr(comma + 1);
    const auto eq = term.find('=');
    if (eq == std::string_view::npos) return fmt::format("invalid field selector term '{}'", term);
    const std::string_view field = term.substr(0, eq);
    std::string_view value = term.substr(eq + 1);
    if (!value.empty() && value.front() == '=') value.remove_prefix(1);
    if (field == "spec.nodeName") {
      filter.node = std::string(value);
    } else if (field == "metadata.name") {
      filter.name = std::string(value);
    } else if (field == "metadata.namespace") {
      filter.namespace_ = std::string(value);
    } else {
      return fmt::format("field label not supported: {}", field);
    }
  }
  return std::nullopt;
}

// A leaf certificate with a subjectAltName of IP 127.0.0.1 + DNS names, signed by `ca`: pki.h mints URI SANs
// only, so the extension is added here and the certificate signed again.
void add_server_sans(X509* cert, EVP_PKEY* ca_key) {
  bssl::UniquePtr<GENERAL_NAMES> names(sk_GENERAL_NAME_new_null());
  if (!names) fail_setup("sk_GENERAL_NAME_new_null");
  {
    bssl::UniquePtr<GENERAL_NAME> ip(GENERAL_NAME_new());
    bssl::UniquePtr<ASN1_OCTET_STRING> bytes(ASN1_OCTET_STRING_new());
    static constexpr unsigned char kLoopback[4] = {127, 0, 0, 1};
    if (!ip || !bytes || ASN1_OCTET_STRING_set(bytes.get(), kLoopback, sizeof kLoopback) != 1) fail_setup("IP SAN");
    GENERAL_NAME_set0_value(ip.get(), GEN_IPADD, bytes.release());
    if (sk_GENERAL_NAME_push(names.get(), ip.get()) == 0) fail_setup("IP SAN push");
    ip.release();
  }
  for (const char* dns : {"localhost", "kubernetes.default.svc"}) {
    bssl::UniquePtr<GENERAL_NAME> name(GENERAL_NAME_new());
    bssl::UniquePtr<ASN1_IA5STRING> text(ASN1_IA5STRING_new());
    if (!name || !text || ASN1_STRING_set(text.get(), dns, -1) != 1) fail_setup("DNS SAN");
    GENERAL_NAME_set0_value(name.get(), GEN_DNS, text.release());
    if (sk_GENERAL_NAME_push(names.get(), name.get()) == 0) fail_setup("DNS SAN push");
    name.release();
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_REPLACE) != 1) {
    fail_setup("X509_add1_ext_i2d: " + tls::drain_ssl_errors());
  }
  if (X509_sign(cert, ca_key, EVP_sha256()) == 0) fail_setup("X509_sign: " + tls::drain_ssl_errors());
}

tls::CertificateSpec spec_for(std::string organization, bool is_ca) {
  tls::CertificateSpec spec;
  spec.organization = std::move(organization);
  spec.is_ca = is_ca;
  spec.server_auth = true;
  spec.client_auth = false;
  spec.not_before = std::chrono::system_clock::now() - std::chrono::hours(1);
  spec.not_after = std::chrono::system_clock::now() + std::chrono::hours(24);
  return spec;
}

}  // namespace

struct FakeKubeApi::Impl {
  // One entry of the history every watch reads, in order (seq increases by one per entry).
  struct LogEntry {
    enum class Kind { Event, Raw, Drop, Bookmark };
    Kind kind = Kind::Event;
    std::uint64_t seq = 0;
    Resource resource = Resource::Pods;       // Event
    WatchEvent::Type type = WatchEvent::Type::Added;  // Event
    json::object object;                      // Event: the object after the change (DELETED: its last state)
    std::uint64_t rv = 0;                     // Event: its resourceVersion; Bookmark: the current one then
    std::string raw;                          // Raw: the line, without "\n"
  };
  struct Reply {
    int status = 200;
    std::string body;
  };
  struct WatchPlan {
    Resource resource = Resource::Pods;
    Filter filter;
    std::uint64_t from_rv = 0;          // events after this one
    std::uint64_t registered_seq = 0;   // faults (raw, drop, bookmark) after this entry
    bool too_old = false;               // -> one ERROR 410 event
    bool bookmarks = false;
    std::int64_t timeout_seconds = kDefaultWatchSeconds;
    std::vector<json::object> initial;  // resourceVersion "" or "0": the current objects as ADDED first
  };
  struct Snapshot {
    std::vector<json::object> items;
    std::uint64_t rv = 0;
  };

  Options options;
  TempDir dir{"fake-kube-api"};
  std::string ca_file;
  std::string token_file;
  std::string unrelated_ca_file;
  bssl::UniquePtr<SSL_CTX> server_ctx;

  mutable std::mutex mu;
  mutable std::condition_variable changed;
  std::uint64_t version = 0;  // bumped by every change of anything below (wait_until)
  std::uint64_t rv = 1000;
  std::uint64_t seq = 0;
  std::uint64_t compacted_rv = 0;
  std::map<std::string, json::object> objects[2];  // by key_of()
  std::vector<LogEntry> log;
  Counters counters;
  std::vector<RecordedRequest> requests;
  std::vector<RecordedPatch> patches;
  int fail_remaining = 0;
  int fail_status = 0;
  int open_watches = 0;
  std::map<std::uint64_t, Snapshot> snapshots;
  std::uint64_t next_snapshot = 1;
  std::uint64_t next_uid = 1;

  // Server thread only: the timers open watches sleep on (cancelled to wake them), and the connections that
  // are waiting for or serving a request (not watches).
  std::vector<std::weak_ptr<asio::steady_timer>> wakers;
  std::set<tls::TlsStream*> request_connections;

  std::optional<asio::io_context> io;
  std::optional<tcp::acceptor> acceptor;
  std::uint16_t port = 0;
  std::thread thread;

  explicit Impl(Options o) : options(std::move(o)) {}

  // ---- state (mu held) ----------------------------------------------------------------------------------

  void touch() {
    ++version;
    changed.notify_all();
  }

  void append(LogEntry entry) {
    entry.seq = ++seq;
    log.push_back(std::move(entry));
    touch();
  }

  void emit(Resource r, WatchEvent::Type type, const json::object& object, std::uint64_t event_rv) {
    LogEntry e;
    e.kind = LogEntry::Kind::Event;
    e.resource = r;
    e.type = type;
    e.object = object;
    e.rv = event_rv;
    append(std::move(e));
  }

  // Stores `object` (metadata.name set) as the new state of its key; emits the events. Returns its rv.
  std::uint64_t put(Resource r, json::object object) {
    json::object& meta = metadata_of(object);
    if (r == Resource::Pods && string_field(meta, "namespace").empty()) meta["namespace"] = "default";
    if (r == Resource::Namespaces) meta.erase("namespace");
    const std::string ns = string_field(meta, "namespace");
    const std::string name = string_field(meta, "name");
    const std::string key = key_of(r, ns, name);
    auto& store = objects[static_cast<int>(r)];
    auto it = store.find(key);
    std::string uid = string_field(meta, "uid");
    if (uid.empty()) uid = it != store.end() ? meta_field(it->second, "uid") : fmt::format("uid-{}-{}", name, next_uid++);
    meta["uid"] = uid;
    if (it != store.end() && meta_field(it->second, "uid") != uid) {  // a namesake: the old one is deleted
      json::object old = std::move(it->second);
      store.erase(it);
      const std::uint64_t deleted_rv = ++rv;
      metadata_of(old)["resourceVersion"] = std::to_string(deleted_rv);
      emit(r, WatchEvent::Type::Deleted, old, deleted_rv);
      it = store.end();
    }
    const auto type = it == store.end() ? WatchEvent::Type::Added : WatchEvent::Type::Modified;
    const std::uint64_t object_rv = ++rv;
    meta["resourceVersion"] = std::to_string(object_rv);
    object["kind"] = kind_of(r);
    object["apiVersion"] = "v1";
    store[key] = object;
    emit(r, type, object, object_rv);
    return object_rv;
  }

  // ---- requests (mu held) -------------------------------------------------------------------------------

  Reply status_reply(int code, std::string_view message) {
    return Reply{code, json::serialize(status_object(code, message))};
  }

  std::variant<Reply, WatchPlan> handle(const http::request<http::string_body>& req) {
    std::lock_guard lock(mu);
    const std::string_view target = req.target();
    const auto question = target.find('?');
    const std::string_view path = target.substr(0, question);
    const std::string_view query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
    requests.push_back(RecordedRequest{std::string(req.method_string()), std::string(path), std::string(query)});
    touch();

    if (!options.token.empty()) {
      const auto auth = req.find(http::field::authorization);
      if (auth == req.end() || auth->value() != "Bearer " + options.token) {
        ++counters.unauthorized;
        return status_reply(401, "Unauthorized");
      }
    }
    if (fail_remaining > 0) {
      --fail_remaining;
      ++counters.injected;
      return status_reply(fail_status, fmt::format("injected failure {}", fail_status));
    }

    const auto params = parse_query(query);
    auto param = [&params](const std::string& name) {
      auto it = params.find(name);
      return it == params.end() ? std::string() : it->second;
    };
    const auto parts = split_path(path);
    if (parts.size() < 3 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces") {
      if (parts.size() == 3 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "pods") {
        if (req.method() != http::verb::get) return status_reply(405, "method not allowed");
        return collection(Resource::Pods, std::nullopt, param);
      }
      return status_reply(404, "the server could not find the requested resource");
    }
    // /api/v1/namespaces[/{ns}[/pods[/{name}[/status]]]]
    if (parts.size() == 3) {
      if (req.method() != http::verb::get) return status_reply(405, "method not allowed");
      return collection(Resource::Namespaces, std::nullopt, param);
    }
    const std::string ns(parts[3]);
    if (parts.size() == 4) {
      if (req.method() != http::verb::get) return status_reply(405, "method not allowed");
      return get_object(Resource::Namespaces, "", ns);
    }
    if (parts[4] != "pods" || parts.size() > 7 || (parts.size() == 7 && parts[6] != "status")) {
      return status_reply(404, "the server could not find the requested resource");
    }
    if (parts.size() == 5) {
      if (req.method() != http::verb::get) return status_reply(405, "method not allowed");
      return collection(Resource::Pods, ns, param);
    }
    const std::string name(parts[5]);
    const std::string subresource = parts.size() == 7 ? "status" : "";
    if (req.method() == http::verb::get) return get_object(Resource::Pods, ns, name);
    if (req.method() == http::verb::patch) return patch_pod(req, ns, name, subresource);
    return status_reply(405, "method not allowed");
  }

  template <typename Param>
  std::variant<Reply, WatchPlan> collection(Resource r, std::optional<std::string> ns, const Param& param) {
    Filter filter;
    if (auto bad = parse_field_selector(param("fieldSelector"), filter)) return status_reply(400, *bad);
    if (ns) filter.namespace_ = *ns;
    const std::string watch = param("watch");
    if (watch == "1" || watch == "true") return watch_plan(r, filter, param);
    return list(r, filter, param);
  }

  template <typename Param>
  std::variant<Reply, WatchPlan> watch_plan(Resource r, const Filter& filter, const Param& param) {
    WatchPlan plan;
    plan.resource = r;
    plan.filter = filter;
    plan.registered_seq = seq;
    plan.bookmarks = param("allowWatchBookmarks") == "true";
    const std::string timeout = param("timeoutSeconds");
    if (!timeout.empty()) {
      if (timeout.find_first_not_of("0123456789") != std::string::npos || timeout.size() > 9) {
        return status_reply(400, fmt::format("invalid timeoutSeconds '{}'", timeout));
      }
      plan.timeout_seconds = std::max<std::int64_t>(1, std::stoll(timeout));
    }
    const std::string from = param("resourceVersion");
    if (from.empty() || from == "0") {
      plan.from_rv = rv;
      for (const auto& [key, object] : objects[static_cast<int>(r)]) {
        if (filter.matches(object)) plan.initial.push_back(object);
      }
    } else {
      if (from.find_first_not_of("0123456789") != std::string::npos || from.size() > 18) {
        return status_reply(400, fmt::format("invalid resourceVersion '{}'", from));
      }
      plan.from_rv = std::stoull(from);
      plan.too_old = plan.from_rv < compacted_rv;
    }
    ++counters.watches;
    ++open_watches;
    touch();
    return plan;
  }

  template <typename Param>
  Reply list(Resource r, const Filter& filter, const Param& param) {
    ++counters.lists;
    touch();
    const std::string limit_text = param("limit");
    std::size_t limit = 0;
    if (!limit_text.empty()) {
      if (limit_text.find_first_not_of("0123456789") != std::string::npos || limit_text.size() > 9) {
        return status_reply(400, fmt::format("invalid limit '{}'", limit_text));
      }
      limit = std::stoul(limit_text);
    }
    const std::string cont = param("continue");
    std::uint64_t snapshot_id = 0;
    std::size_t offset = 0;
    Snapshot fresh;
    const Snapshot* snapshot = nullptr;
    if (!cont.empty()) {
      unsigned long long id = 0;
      unsigned long long off = 0;
      if (std::sscanf(cont.c_str(), "snapshot-%llu-%llu", &id, &off) != 2 || snapshots.count(id) == 0) {
        return status_reply(410, "the provided continue parameter is too old or invalid");
      }
      snapshot_id = id;
      offset = static_cast<std::size_t>(off);
      snapshot = &snapshots[id];
    } else {
      fresh.rv = rv;
      for (const auto& [key, object] : objects[static_cast<int>(r)]) {
        if (filter.matches(object)) fresh.items.push_back(object);
      }
      snapshot = &fresh;
    }
    const std::size_t end = limit == 0 ? snapshot->items.size() : std::min(snapshot->items.size(), offset + limit);
    json::array items;
    for (std::size_t i = std::min(offset, end); i < end; ++i) items.push_back(snapshot->items[i]);
    json::object metadata{{"resourceVersion", std::to_string(snapshot->rv)}};
    if (end < snapshot->items.size()) {
      if (snapshot_id == 0) {
        snapshot_id = next_snapshot++;
        snapshots[snapshot_id] = std::move(fresh);
      }
      metadata["continue"] = fmt::format("snapshot-{}-{}", snapshot_id, end);
    }
    json::object body{{"kind", fmt::format("{}List", kind_of(r))},
                      {"apiVersion", "v1"},
                      {"metadata", std::move(metadata)},
                      {"items", std::move(items)}};
    return Reply{200, json::serialize(body)};
  }

  Reply get_object(Resource r, const std::string& ns, const std::string& name) {
    ++counters.gets;
    touch();
    const auto& store = objects[static_cast<int>(r)];
    auto it = store.find(key_of(r, ns, name));
    if (it == store.end()) {
      return status_reply(404, fmt::format("{} \"{}\" not found", r == Resource::Pods ? "pods" : "namespaces", name));
    }
    return Reply{200, json::serialize(it->second)};
  }

  Reply patch_pod(const http::request<http::string_body>& req, const std::string& ns, const std::string& name,
                  const std::string& subresource) {
    const auto content_type = req.find(http::field::content_type);
    const std::string type = content_type == req.end() ? "" : std::string(content_type->value());
    if (type != "application/merge-patch+json") {
      return status_reply(415, fmt::format("the body of the request was in an unknown format: '{}'", type));
    }
    boost::system::error_code ec;
    json::value patch = json::parse(req.body(), ec);
    if (ec) return status_reply(400, fmt::format("error decoding patch: {}", ec.message()));
    auto& store = objects[static_cast<int>(Resource::Pods)];
    auto it = store.find(key_of(Resource::Pods, ns, name));
    if (it == store.end()) return status_reply(404, fmt::format("pods \"{}\" not found", name));
    patches.push_back(RecordedPatch{ns, name, subresource, type, req.body()});
    ++counters.patches;
    const std::string uid = meta_field(it->second, "uid");
    json::value patched = merge_patch(json::value(it->second), patch);
    if (!patched.is_object()) return status_reply(400, "the patch must be an object");
    json::object& meta = metadata_of(patched.as_object());
    meta["name"] = name;
    meta["namespace"] = ns;
    meta["uid"] = uid;
    put(Resource::Pods, std::move(patched.as_object()));
    return Reply{200, json::serialize(store[key_of(Resource::Pods, ns, name)])};
  }

  // ---- server thread ------------------------------------------------------------------------------------

  // Wakes every open watch (they re-read the history). Called after any append, from any thread.
  void wake_watches() {
    asio::post(*io, [this] {
      std::erase_if(wakers, [](const std::weak_ptr<asio::steady_timer>& w) { return w.expired(); });
      for (const auto& w : wakers) {
        if (auto timer = w.lock()) timer->cancel();
      }
    });
  }

  awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(kUseTuple);
      if (ec == asio::error::operation_aborted) co_return;
      if (ec) continue;
      asio::co_spawn(*io, serve(std::move(socket)), [](std::exception_ptr) {});
    }
  }

  static awaitable<bool> read_request(tls::TlsStream& stream, beast::flat_buffer& buffer,
                                      http::request_parser<http::string_body>& parser) {
    for (;;) {
      if (buffer.size() > 0) {
        boost::system::error_code ec;
        const std::size_t used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        if (parser.is_done()) co_return true;
        if (ec && ec != http::error::need_more) co_return false;
        if (!ec && used > 0) continue;
      }
      if (buffer.size() > kMaxRequestHead + kMaxRequestBody) co_return false;
      const auto space = buffer.prepare(kReadChunk);
      auto n = co_await stream.read_some(std::span<std::uint8_t>(static_cast<std::uint8_t*>(space.data()), space.size()));
      if (!n || *n == 0) co_return false;
      buffer.commit(*n);
    }
  }

  static awaitable<bool> write(tls::TlsStream& stream, const std::string& bytes) {
    auto w = co_await stream.write_all(
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
    co_return w.has_value();
  }

  awaitable<void> serve(tcp::socket socket) {
    bssl::UniquePtr<SSL> ssl(SSL_new(server_ctx.get()));
    if (!ssl) co_return;
    SSL_set_accept_state(ssl.get());
    tls::TlsStream stream(std::move(socket), std::move(ssl));
    auto handshake = co_await cni::kube::run_handshake(stream, std::chrono::seconds(10), "fake API server client");
    if (!handshake) co_return;
    {
      std::lock_guard lock(mu);
      ++counters.connections;
      touch();
    }
    struct Registered {  // in request_connections while serving requests (server thread only)
      Impl* impl;
      tls::TlsStream* stream;
      ~Registered() { impl->request_connections.erase(stream); }
    } registered{this, &stream};
    request_connections.insert(&stream);
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(kMaxRequestHead);
      parser.body_limit(kMaxRequestBody);
      if (!co_await read_request(stream, buffer, parser)) co_return;
      const http::request<http::string_body> req = parser.release();
      auto action = handle(req);
      if (req.method() == http::verb::patch) wake_watches();  // a patch emits MODIFIED
      if (auto* reply = std::get_if<Reply>(&action)) {
        const std::string bytes = fmt::format(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}", reply->status,
            reason_phrase(reply->status), reply->body.size(), reply->body);
        if (!co_await write(stream, bytes) || !req.keep_alive()) co_return;
        continue;
      }
      request_connections.erase(&stream);  // a watch now: close_idle_connections() leaves it alone
      co_await serve_watch(stream, std::move(std::get<WatchPlan>(action)));
      co_return;
    }
  }

  std::string event_line(WatchEvent::Type type, const json::object& object) {
    WatchEvent event;
    event.type = type;
    event.object = object;
    return cni::kube::format_watch_event(event) + "\n";
  }

  awaitable<void> serve_watch(tls::TlsStream& stream, WatchPlan plan) {
    struct Closed {  // open_watches counts until the coroutine ends, however it ends
      Impl* impl;
      ~Closed() {
        std::lock_guard lock(impl->mu);
        --impl->open_watches;
        impl->touch();
      }
    } closed{this};
    const std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    if (!co_await write(stream, head)) co_return;
    if (plan.too_old) {
      json::object status = status_object(410, fmt::format("too old resource version: {} ({})", plan.from_rv, compacted_rv_now()));
      const std::string bytes = chunk(event_line(WatchEvent::Type::Error, status)) + "0\r\n\r\n";
      co_await write(stream, bytes);
      co_return;
    }
    std::string initial;
    for (const auto& object : plan.initial) initial += chunk(event_line(WatchEvent::Type::Added, object));
    if (!initial.empty() && !co_await write(stream, initial)) co_return;

    auto waker = std::make_shared<asio::steady_timer>(*io);
    wakers.push_back(waker);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(plan.timeout_seconds);
    std::size_t next = 0;
    for (;;) {
      std::string out;
      bool drop = false;
      {
        std::lock_guard lock(mu);
        for (; next < log.size() && !drop; ++next) {
          const LogEntry& e = log[next];
          const bool after_registration = e.seq > plan.registered_seq;
          switch (e.kind) {
            case LogEntry::Kind::Event:
              if (e.rv > plan.from_rv && e.resource == plan.resource && plan.filter.matches(e.object)) {
                out += chunk(event_line(e.type, e.object));
              }
              break;
            case LogEntry::Kind::Raw:
              if (after_registration) out += chunk(e.raw + "\n");
              break;
            case LogEntry::Kind::Bookmark:
              if (after_registration && plan.bookmarks) {
                json::object bookmark{{"kind", kind_of(plan.resource)},
                                      {"apiVersion", "v1"},
                                      {"metadata", json::object{{"resourceVersion", std::to_string(e.rv)}}}};
                out += chunk(event_line(WatchEvent::Type::Bookmark, bookmark));
              }
              break;
            case LogEntry::Kind::Drop:
              if (after_registration) drop = true;
              break;
          }
        }
      }
      if (!out.empty() && !co_await write(stream, out)) co_return;
      if (drop) {
        stream.close();  // mid-stream: no last chunk
        co_return;
      }
      if (!out.empty()) continue;  // re-read before sleeping: more may have come meanwhile
      if (std::chrono::steady_clock::now() >= deadline) {
        co_await write(stream, "0\r\n\r\n");  // timeoutSeconds: a normal end
        co_return;
      }
      waker->expires_at(deadline);
      auto woken = waker->async_wait(kUseTuple);
      auto peer = stream.socket().async_wait(tcp::socket::wait_read, kUseTuple);
      auto which = co_await (std::move(woken) || std::move(peer));
      if (which.index() == 1) co_return;  // the client closed its side (it sends nothing on a watch)
    }
  }

  std::uint64_t compacted_rv_now() {
    std::lock_guard lock(mu);
    return compacted_rv;
  }
};

// ---- FakeKubeApi ----------------------------------------------------------------------------------------

FakeKubeApi::FakeKubeApi() : FakeKubeApi(Options{}) {}

FakeKubeApi::FakeKubeApi(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& s = *impl_;
  auto ca_key = must(tls::generate_p256_key(), "CA key");
  auto ca = must(tls::sign_certificate(spec_for("fake-kube-ca", true), ca_key.get(), nullptr, nullptr), "CA");
  auto server_key = must(tls::generate_p256_key(), "server key");
  auto server_cert = must(tls::sign_certificate(spec_for("fake-kube-apiserver", false), server_key.get(), ca.get(),
                                                ca_key.get()),
                          "server certificate");
  add_server_sans(server_cert.get(), ca_key.get());
  auto other_key = must(tls::generate_p256_key(), "unrelated CA key");
  auto other = must(tls::sign_certificate(spec_for("unrelated-ca", true), other_key.get(), nullptr, nullptr), "unrelated CA");
  s.ca_file = s.dir.write("ca.crt", must(tls::certificate_to_pem(ca.get()), "CA PEM"));
  s.unrelated_ca_file = s.dir.write("unrelated-ca.crt", must(tls::certificate_to_pem(other.get()), "unrelated CA PEM"));
  if (!s.options.token.empty()) s.token_file = s.dir.write("token", s.options.token + "\n");

  s.server_ctx.reset(SSL_CTX_new(TLS_method()));
  if (!s.server_ctx) fail_setup("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(s.server_ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(s.server_ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_options(s.server_ctx.get(), SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(s.server_ctx.get(), 0);
  if (SSL_CTX_use_certificate(s.server_ctx.get(), server_cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(s.server_ctx.get(), server_key.get()) != 1) {
    fail_setup("server certificate/key: " + tls::drain_ssl_errors());
  }

  s.io.emplace(1);
  s.acceptor.emplace(*s.io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  s.port = s.acceptor->local_endpoint().port();
  asio::co_spawn(*s.io, s.accept_loop(), [](std::exception_ptr) {});
  s.thread = std::thread([&s] {
    auto guard = asio::make_work_guard(*s.io);
    s.io->run();
  });
}

FakeKubeApi::~FakeKubeApi() {
  Impl& s = *impl_;
  s.io->stop();
  if (s.thread.joinable()) s.thread.join();
  s.acceptor.reset();
  s.io.reset();  // destroys every connection's coroutine (their sockets close) while the state still exists
}

std::uint16_t FakeKubeApi::port() const { return impl_->port; }
std::string FakeKubeApi::url() const { return fmt::format("https://127.0.0.1:{}", impl_->port); }
const std::string& FakeKubeApi::ca_file() const { return impl_->ca_file; }
const std::string& FakeKubeApi::token_file() const { return impl_->token_file; }
const std::string& FakeKubeApi::unrelated_ca_file() const { return impl_->unrelated_ca_file; }

cni::kube::ApiServerConfig FakeKubeApi::client_config() const {
  cni::kube::ApiServerConfig config;
  config.host = "127.0.0.1";
  config.port = impl_->port;
  config.ca_file = impl_->ca_file;
  config.token_file = impl_->token_file;
  return config;
}

std::string FakeKubeApi::upsert(Resource resource, std::string_view text) {
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec || !doc.is_object()) throw std::invalid_argument(fmt::format("FakeKubeApi::upsert: not a JSON object: {}", text));
  if (meta_field(doc.as_object(), "name").empty()) throw std::invalid_argument("FakeKubeApi::upsert: no metadata.name");
  std::uint64_t rv = 0;
  {
    std::lock_guard lock(impl_->mu);
    rv = impl_->put(resource, std::move(doc.as_object()));
  }
  impl_->wake_watches();
  return std::to_string(rv);
}

std::string FakeKubeApi::remove(Resource resource, std::string_view namespace_, std::string_view name) {
  std::uint64_t rv = 0;
  {
    std::lock_guard lock(impl_->mu);
    auto& store = impl_->objects[static_cast<int>(resource)];
    auto it = store.find(key_of(resource, resource == Resource::Pods ? namespace_ : "", name));
    if (it == store.end()) return "";
    json::object old = std::move(it->second);
    store.erase(it);
    rv = ++impl_->rv;
    metadata_of(old)["resourceVersion"] = std::to_string(rv);
    impl_->emit(resource, WatchEvent::Type::Deleted, old, rv);
  }
  impl_->wake_watches();
  return std::to_string(rv);
}

std::string FakeKubeApi::remove(Resource resource, std::string_view text) {
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec || !doc.is_object()) throw std::invalid_argument(fmt::format("FakeKubeApi::remove: not a JSON object: {}", text));
  const std::string ns = meta_field(doc.as_object(), "namespace");
  return remove(resource, resource == Resource::Pods && ns.empty() ? "default" : ns, meta_field(doc.as_object(), "name"));
}

std::optional<json::object> FakeKubeApi::object(Resource resource, std::string_view namespace_, std::string_view name) const {
  std::lock_guard lock(impl_->mu);
  const auto& store = impl_->objects[static_cast<int>(resource)];
  auto it = store.find(key_of(resource, resource == Resource::Pods ? namespace_ : "", name));
  if (it == store.end()) return std::nullopt;
  return it->second;
}

std::string FakeKubeApi::annotation(std::string_view namespace_, std::string_view name, std::string_view key) const {
  auto pod = object(Resource::Pods, namespace_, name);
  if (!pod) return "";
  const json::value* meta = pod->if_contains("metadata");
  if (meta == nullptr || !meta->is_object()) return "";
  const json::value* annotations = meta->as_object().if_contains("annotations");
  if (annotations == nullptr || !annotations->is_object()) return "";
  return string_field(annotations->as_object(), key);
}

std::string FakeKubeApi::resource_version() const {
  std::lock_guard lock(impl_->mu);
  return std::to_string(impl_->rv);
}

std::string FakeKubeApi::pod_json(const PodFields& p) {
  json::object labels;
  for (const auto& [k, v] : p.labels) labels[k] = v;
  json::object notes;
  for (const auto& [k, v] : p.annotations) notes[k] = v;
  json::object metadata{{"name", p.name}, {"namespace", p.namespace_}, {"labels", std::move(labels)},
                        {"annotations", std::move(notes)}};
  if (!p.uid.empty()) metadata["uid"] = p.uid;
  metadata["managedFields"] = json::array{json::object{
      {"manager", "kubelet"},
      {"operation", "Update"},
      {"apiVersion", "v1"},
      {"fieldsType", "FieldsV1"},
      {"fieldsV1", json::object{{"f:status", json::object{{"f:podIP", json::object()}}}}}}};
  json::object spec{{"nodeName", p.node},
                    {"serviceAccountName", p.service_account},
                    {"containers", json::array{json::object{{"name", "app"}, {"image", "app:1"}}}}};
  if (p.host_network) spec["hostNetwork"] = true;
  json::object status{{"phase", p.phase}};
  if (!p.ip.empty()) {
    status["podIP"] = p.ip;
    status["podIPs"] = json::array{json::object{{"ip", p.ip}}};
  }
  json::object pod{{"apiVersion", "v1"},
                   {"kind", "Pod"},
                   {"metadata", std::move(metadata)},
                   {"spec", std::move(spec)},
                   {"status", std::move(status)}};
  return json::serialize(pod);
}

std::string FakeKubeApi::pod_json(std::string_view namespace_, std::string_view name, std::string_view node,
                                  std::string_view uid, std::string_view ip,
                                  const std::map<std::string, std::string>& annotations) {
  PodFields p;
  p.namespace_ = std::string(namespace_);
  p.name = std::string(name);
  p.node = std::string(node);
  p.uid = std::string(uid);
  p.ip = std::string(ip);
  p.annotations = annotations;
  return pod_json(p);
}

std::string FakeKubeApi::namespace_json(std::string_view name, const std::map<std::string, std::string>& labels) {
  json::object l;
  for (const auto& [k, v] : labels) l[k] = v;
  json::object ns{{"apiVersion", "v1"},
                  {"kind", "Namespace"},
                  {"metadata", json::object{{"name", name}, {"labels", std::move(l)}}},
                  {"status", json::object{{"phase", "Active"}}}};
  return json::serialize(ns);
}

void FakeKubeApi::compact() {
  std::lock_guard lock(impl_->mu);
  impl_->compacted_rv = impl_->rv;
  impl_->touch();
}

void FakeKubeApi::drop_watches() {
  {
    std::lock_guard lock(impl_->mu);
    Impl::LogEntry e;
    e.kind = Impl::LogEntry::Kind::Drop;
    impl_->append(std::move(e));
  }
  impl_->wake_watches();
}

void FakeKubeApi::fail_next(int n, int status) {
  std::lock_guard lock(impl_->mu);
  impl_->fail_remaining = n;
  impl_->fail_status = status;
  impl_->touch();
}

void FakeKubeApi::inject_raw_watch_line(std::string text) {
  {
    std::lock_guard lock(impl_->mu);
    Impl::LogEntry e;
    e.kind = Impl::LogEntry::Kind::Raw;
    e.raw = std::move(text);
    impl_->append(std::move(e));
  }
  impl_->wake_watches();
}

void FakeKubeApi::send_bookmarks() {
  {
    std::lock_guard lock(impl_->mu);
    Impl::LogEntry e;
    e.kind = Impl::LogEntry::Kind::Bookmark;
    e.rv = impl_->rv;
    impl_->append(std::move(e));
  }
  impl_->wake_watches();
}

void FakeKubeApi::close_idle_connections() {
  Impl* impl = impl_.get();
  std::promise<void> done;
  asio::post(*impl->io, [impl, &done] {
    for (tls::TlsStream* stream : impl->request_connections) stream->close();  // their reads end; serve() returns
    done.set_value();
  });
  done.get_future().wait();
}

FakeKubeApi::Counters FakeKubeApi::counters() const {
  std::lock_guard lock(impl_->mu);
  return impl_->counters;
}

int FakeKubeApi::open_watches() const {
  std::lock_guard lock(impl_->mu);
  return impl_->open_watches;
}

std::vector<FakeKubeApi::RecordedRequest> FakeKubeApi::requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->requests;
}

std::vector<FakeKubeApi::RecordedPatch> FakeKubeApi::patches() const {
  std::lock_guard lock(impl_->mu);
  return impl_->patches;
}

std::string FakeKubeApi::RecordedRequest::param(std::string_view name) const {
  const auto params = parse_query(query);
  auto it = params.find(std::string(name));
  return it == params.end() ? std::string() : it->second;
}

bool FakeKubeApi::wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::uint64_t seen = 0;
    {
      std::lock_guard lock(impl_->mu);
      seen = impl_->version;
    }
    if (condition()) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    std::unique_lock lock(impl_->mu);
    impl_->changed.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(20)),
                              [&] { return impl_->version != seen; });
  }
}

bool FakeKubeApi::wait_for_annotation(std::string_view namespace_, std::string_view name, std::string_view key,
                                      std::string_view value, std::chrono::milliseconds timeout) const {
  return wait_until([&] { return annotation(namespace_, name, key) == value; }, timeout);
}

bool FakeKubeApi::wait_for_open_watches(int count, std::chrono::milliseconds timeout) const {
  return wait_until([&] { return open_watches() >= count; }, timeout);
}

}  // namespace ambient::test
