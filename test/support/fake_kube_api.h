#pragma once
// FakeKubeApi: a real HTTPS Kubernetes API server on 127.0.0.1 (port 0) for tests of cni/kube and of the
// node agent. It runs on its own thread and io_context; every public method is thread-safe and may be called
// from the test thread while clients talk to it.
//
// TLS: a test CA and a server certificate for IP 127.0.0.1 (and DNS localhost, kubernetes.default.svc),
// minted in-process with common/tls at construction; TLS 1.2 and 1.3. ca_file() holds the CA's PEM.
// Auth: `Authorization: Bearer <options.token>` is required (401 Status otherwise) unless the token is "".
//
// State: pods and namespaces as JSON objects, one global resourceVersion (a counter bumped by every change),
// and a history of every change (the watch cache). Served (core/v1 JSON, kube-apiserver's shapes):
//   GET   /api/v1/pods, /api/v1/namespaces/{ns}/pods, /api/v1/namespaces   list; fieldSelector spec.nodeName,
//                                              metadata.name, metadata.namespace (k=v, comma-separated);
//                                              limit + continue paging over a snapshot taken at the first page
//   GET   /api/v1/namespaces/{ns}/pods/{name}, /api/v1/namespaces/{name}   one object (404 Status if absent)
//   GET   ...same lists...?watch=1|true&resourceVersion=N[&allowWatchBookmarks=true][&timeoutSeconds=T]
//         200, chunked, one JSON event per line: replays the history after N, then streams live changes
//         until T seconds have passed (then a normal end: the last chunk). N older than the last compact()
//         -> one ERROR event with a 410 Expired Status, then the end.
//   PATCH /api/v1/namespaces/{ns}/pods/{name}[/status]  Content-Type application/merge-patch+json: RFC 7386
//         merge patch of the object (name, namespace and uid kept), resourceVersion bumped, a MODIFIED event;
//         the request is recorded (patches()). 404 when the pod is absent, 415 for another content type.
// Objects carry metadata.managedFields as the real server's do (clients are expected to drop them).
//
// Faults: fail_next(n, status) answers the next n requests (of any kind, after auth) with that status;
// compact() makes every older resourceVersion too old for a watch; drop_watches() cuts every open watch
// connection (no last chunk); inject_raw_watch_line(text) writes a line to every open watch; send_bookmarks()
// sends a BOOKMARK to every open watch that allowed them; close_idle_connections() closes the connections that
// are not watches (a client must retry on a new one). Each fault reaches an open watch in order with the
// events around it (the history carries it).
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "cni/kube/api_server_config.h"

namespace ambient::test {

class FakeKubeApi {
 public:
  enum class Resource { Pods, Namespaces };

  struct Options {
    std::string token = "fake-kube-token";  // the bearer token clients must send; "" = no check
  };

  struct Counters {
    int connections = 0;   // TLS connections accepted (handshake done)
    int lists = 0;         // list requests (one per page)
    int gets = 0;          // single-object GETs
    int watches = 0;       // watch requests answered 200
    int patches = 0;       // PATCH requests applied
    int unauthorized = 0;  // requests refused with 401
    int injected = 0;      // requests answered by fail_next
  };

  struct RecordedRequest {
    std::string method;  // "GET", "PATCH"
    std::string path;    // "/api/v1/pods"
    std::string query;   // raw, as sent
    // A query parameter, URL-decoded ("" when absent).
    std::string param(std::string_view name) const;
  };

  struct RecordedPatch {
    std::string namespace_;
    std::string name;
    std::string subresource;  // "status" or ""
    std::string content_type;
    std::string body;
  };

  FakeKubeApi();  // default Options
  explicit FakeKubeApi(Options options);
  ~FakeKubeApi();  // closes every connection, stops the thread, removes its files
  FakeKubeApi(const FakeKubeApi&) = delete;
  FakeKubeApi& operator=(const FakeKubeApi&) = delete;

  // ---- where it is --------------------------------------------------------------------------------------
  std::uint16_t port() const;
  std::string url() const;                       // "https://127.0.0.1:<port>"
  const std::string& ca_file() const;            // the CA that signed the server certificate (PEM)
  const std::string& token_file() const;         // holds options.token ("" path when the token is "")
  const std::string& unrelated_ca_file() const;  // a CA that did not sign it (for bad-CA tests)
  // host 127.0.0.1, port(), ca_file(), token_file(): ready for cni::kube::ApiClient.
  cni::kube::ApiServerConfig client_config() const;

  // ---- objects ------------------------------------------------------------------------------------------
  // Creates or replaces an object from its JSON text (must parse and carry metadata.name; pods default to
  // namespace "default"; a missing uid is kept from the existing object or made up). Emits ADDED or MODIFIED
  // (a new uid under an existing name: DELETED of the old, then ADDED). Returns the new resourceVersion.
  // Throws std::invalid_argument on bad JSON (a test bug).
  std::string upsert(Resource resource, std::string_view json);
  // Deletes an object: a DELETED event; returns its resourceVersion, "" when there was no such object.
  std::string remove(Resource resource, std::string_view namespace_, std::string_view name);
  // The stored object (namespace "" for namespaces), nullopt when absent.
  std::optional<boost::json::object> object(Resource resource, std::string_view namespace_, std::string_view name) const;
  // metadata.annotations[key] of a pod ("" when the pod or the annotation is absent).
  std::string annotation(std::string_view namespace_, std::string_view name, std::string_view key) const;
  // The current global resourceVersion.
  std::string resource_version() const;

  // Deletes the object that `json` names (its metadata.namespace/name); as remove() above.
  std::string remove(Resource resource, std::string_view json);

  // The fields of a Pod that pod_json writes.
  struct PodFields {
    std::string namespace_ = "default";
    std::string name;
    std::string node;                     // spec.nodeName
    std::string uid;                      // "" = upsert() makes one up
    std::string ip = "10.0.0.1";          // status.podIP and status.podIPs ("" = none yet)
    std::string phase = "Running";        // status.phase
    bool host_network = false;            // spec.hostNetwork
    std::string service_account = "default";
    std::map<std::string, std::string> labels;
    std::map<std::string, std::string> annotations;
  };
  // A Pod as the API server returns it (with managedFields).
  static std::string pod_json(const PodFields& pod);
  // The same for the common case: a running pod scheduled to `node`.
  static std::string pod_json(std::string_view namespace_, std::string_view name, std::string_view node,
                              std::string_view uid = "", std::string_view ip = "10.0.0.1",
                              const std::map<std::string, std::string>& annotations = {});
  static std::string namespace_json(std::string_view name, const std::map<std::string, std::string>& labels = {});

  // ---- faults -------------------------------------------------------------------------------------------
  void compact();                              // watches from a resourceVersion before now get 410
  void drop_watches();                         // cut every open watch connection mid-stream
  void fail_next(int n, int status);           // the next n requests are answered `status` (a Status body)
  void inject_raw_watch_line(std::string text);  // `text` + "\n" to every open watch (malformed events)
  void send_bookmarks();                       // a BOOKMARK at the current resourceVersion to open watches
  // Closes every connection that is not a watch (idle keep-alive ones included), as a server does with idle
  // connections; returns once they are closed.
  void close_idle_connections();

  // ---- observation --------------------------------------------------------------------------------------
  Counters counters() const;
  int open_watches() const;
  std::vector<RecordedRequest> requests() const;
  std::vector<RecordedPatch> patches() const;

  // Blocks the calling thread until `condition` holds (re-checked whenever the server's state changes, and at
  // least every 20 ms; never called with the server's lock held) or `timeout` passes; false on timeout.
  bool wait_until(const std::function<bool()>& condition,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  bool wait_for_annotation(std::string_view namespace_, std::string_view name, std::string_view key,
                           std::string_view value, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  bool wait_for_open_watches(int count, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  struct Impl;  // fake_kube_api.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ambient::test
