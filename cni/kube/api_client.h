#pragma once
// ApiClient: the node agent's client of the Kubernetes API server. HTTPS (kube_tls.h) + HTTP/1.1 + JSON:
//   list         GET a collection page by page (limit=500&continue=...): its items + the list's resourceVersion
//   get          GET one object
//   merge_patch  PATCH application/merge-patch+json (the agent's pods/status annotation)
//   watch        GET ?watch=true: a chunked stream of events, one JSON line each (watch_event.h)
//
// Connections: requests (list/get/patch) share one keep-alive connection (at most one idle connection is
// kept; a request issued while another is in flight opens its own). A request that fails on a reused
// connection before any answer byte (the server closed it while idle) is retried once on a new one. Each
// watch has a connection of its own, closed when the watch ends. The bearer token is read from
// config.token_file for every new connection (projected tokens rotate), the CA file too.
//
// Errors (Result), each naming the request and the server:
//   NotFound             404 (get, merge_patch: the object is gone)
//   HttpStatus, code=N   any other non-2xx answer, with the API's Status message ("403: pods is forbidden: ...");
//                        410 Gone (watch: as an HTTP status or an ERROR event) means the resourceVersion is too
//                        old and the caller must relist: is_gone()
//   InvalidArgument      a malformed watch event line (watch ends) or list body
//   ResourceExhausted    a bound of ApiClientLimits was hit (the bound is named)
//   ConnectRefused, TlsHandshake, Timeout, Closed, Io, Parse   transport
//   Cancelled            the awaiting coroutine was cancelled (terminal cancellation)
//
// Threads and lifetime: one executor; every call is made from a coroutine on it. ApiClient is a handle:
// copies share the configuration and the idle connection, and an operation in flight keeps that shared
// state alive, so a copy may be destroyed while an operation it started is still running.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "cni/kube/api_client_limits.h"
#include "cni/kube/api_server_config.h"
#include "cni/kube/watch_event.h"
#include "common/base/result.h"

namespace ambient::cni::kube {

struct ListResult {
  std::vector<boost::json::object> items;  // each with metadata.managedFields dropped
  std::string resource_version;            // the list's: start a watch from here
};

// 410 Gone: as a watch answer, an ERROR event's Status or a list's expired continue token.
bool is_gone(const Error& e) noexcept;

// Go's url.QueryEscape: everything but [A-Za-z0-9-_.~] percent-encoded ("spec.nodeName=n1" ->
// "spec.nodeName%3Dn1"), for building query strings.
std::string query_escape(std::string_view value);

class ApiClient {
 public:
  ApiClient(boost::asio::any_io_executor executor, ApiServerConfig config, ApiClientLimits limits = {});

  // GET `path` ("/api/v1/pods") with `query` ("fieldSelector=spec.nodeName%3Dn1", may be empty; already
  // escaped), page by page until the server has no continue token.
  boost::asio::awaitable<Result<ListResult>> list(std::string path, std::string query);
  // GET one object ("/api/v1/namespaces/ns/pods/name"); managedFields dropped.
  boost::asio::awaitable<Result<boost::json::value>> get(std::string path);
  // PATCH `path` with a JSON merge patch (RFC 7386) as `body`.
  boost::asio::awaitable<Result<void>> merge_patch(std::string path, std::string body);
  // GET `path`?`query`&watch=true. `on_event` is called for each ADDED/MODIFIED/DELETED/BOOKMARK event, in
  // order, on the caller's executor, before the next line is parsed. Returns ok() when the server ends the
  // stream; an ERROR event ends the watch with HttpStatus (its Status code; 410 -> is_gone()).
  boost::asio::awaitable<Result<void>> watch(std::string path, std::string query,
                                             std::function<void(WatchEvent)> on_event);

  const ApiServerConfig& config() const noexcept;
  const ApiClientLimits& limits() const noexcept;

  struct Shared;  // configuration, the idle connection (api_client.cpp)

 private:
  std::shared_ptr<Shared> shared_;
};

}  // namespace ambient::cni::kube
