// Serialisation helpers and RequestHead accessors.
#include "waypoint/http1/codec.h"

#include <algorithm>
#include <string>
#include <vector>

#include <boost/beast/http/status.hpp>

#include "common/base/ascii.h"

namespace ambient::waypoint::http1 {

namespace {

void append_version(std::string& out, unsigned version) { out += version == 10 ? "HTTP/1.0" : "HTTP/1.1"; }

void append_fields(std::string& out, const h2::Headers& headers) {
  for (const auto& h : headers) {
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view RequestHead::path() const {
  std::string_view t = target;
  t = t.substr(0, t.find('?'));
  if (t.empty() || t.front() == '/' || t == "*") return t;
  const auto scheme_end = t.find("://");
  if (scheme_end == std::string_view::npos) return {};  // authority-form (CONNECT host:port)
  const auto slash = t.find('/', scheme_end + 3);
  return slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
}

std::string_view RequestHead::query() const {
  std::string_view t = target;
  const auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

std::string serialize(const RequestHead& head) {
  std::string out;
  out.reserve(64 + head.target.size() + head.headers.size() * 32);
  out += head.method;
  out += ' ';
  out += head.target;
  out += ' ';
  append_version(out, head.version);
  out += "\r\n";
  append_fields(out, head.headers);
  out += "\r\n";
  return out;
}

std::string serialize(const ResponseHead& head) {
  std::string out;
  out.reserve(64 + head.headers.size() * 32);
  append_version(out, head.version);
  out += ' ';
  out += fmt::format("{:03d}", head.status);
  out += ' ';
  if (head.reason.empty()) {
    const auto r = boost::beast::http::obsolete_reason(boost::beast::http::int_to_status(static_cast<unsigned>(head.status)));
    out.append(r.data(), r.size());
  } else {
    out += head.reason;
  }
  out += "\r\n";
  append_fields(out, head.headers);
  out += "\r\n";
  return out;
}

void append_chunk(std::string& out, std::span<const std::uint8_t> data) {
  if (data.empty()) return;
  out += fmt::format("{:x}\r\n", data.size());
  out.append(reinterpret_cast<const char*>(data.data()), data.size());
  out += "\r\n";
}

void append_last_chunk(std::string& out, const h2::Headers& trailers) {
  out += "0\r\n";
  append_fields(out, trailers);
  out += "\r\n";
}

void remove_hop_by_hop(h2::Headers& headers) {
  std::vector<std::string> named;  // options of every Connection header, lower-cased
  for (const auto& h : headers) {
    if (h.name != "connection") continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      const auto comma = v.find(',');
      const auto token = trim_ows(v.substr(0, comma));
      if (!token.empty()) named.push_back(ascii_lower(token));
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  static constexpr std::string_view kHopByHop[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                                                   "te",         "trailer",    "upgrade"};
  std::erase_if(headers, [&](const h2::Header& h) {
    return std::find(std::begin(kHopByHop), std::end(kHopByHop), h.name) != std::end(kHopByHop) ||
           std::find(named.begin(), named.end(), h.name) != named.end();
  });
}

}  // namespace ambient::waypoint::http1
