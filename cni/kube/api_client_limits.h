#pragma once
// Bounds of everything ApiClient reads from the API server, and its deadlines. An answer over a bound is an
// error naming the bound (ResourceExhausted), never an allocation that grows with the peer's whim.
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace ambient::cni::kube {

struct ApiClientLimits {
  std::size_t max_head_bytes = 64 * 1024;               // status line + headers of one answer
  std::size_t max_event_line_bytes = 2 * 1024 * 1024;   // one watch event (one JSON line)
  std::size_t max_list_page_bytes = 32 * 1024 * 1024;   // one list page body; also one get/patch answer
  std::size_t max_error_body_bytes = 64 * 1024;         // a non-2xx answer's body (a Status): the rest is dropped
  std::uint32_t list_page_size = 500;                   // limit= of each list page (client-go's default)
  std::uint32_t max_list_pages = 10'000;                // pages of one list (a server looping on continue)
  std::chrono::milliseconds connect_timeout{10'000};    // TCP connect + TLS handshake
  std::chrono::milliseconds request_timeout{60'000};    // one list page, get or patch: request to last body byte;
                                                        // also a watch's head
  std::chrono::milliseconds watch_timeout{15 * 60'000}; // a watch's whole life (Informer asks the server to end
                                                        // it within 10 min: this only catches a silent peer)
};

}  // namespace ambient::cni::kube
