#include "cni/api/pod_json.h"

#include <boost/json/array.hpp>

#include "cni/api/json_fields.h"

namespace ambient::cni {

namespace json = boost::json;

namespace {

// Prefixes a validation error ("namespace: ...") with the path of the spec ("pods[1].spec.").
Error at_path(Error e, const std::string& path) {
  if (!path.empty()) e.context = fmt::format("{}.{}", path, e.context);
  return e;
}

}  // namespace

json::object pod_spec_to_json(const PodSpec& spec) {
  json::object o;
  o["uid"] = spec.uid;
  o["name"] = spec.name;
  o["namespace"] = spec.namespace_;
  o["serviceAccount"] = spec.service_account;
  o["netns"] = spec.netns;
  json::array ips;
  for (const std::string& ip : spec.ips) ips.emplace_back(ip);
  o["ips"] = std::move(ips);
  if (spec.options.dns_capture) o["dnsCapture"] = *spec.options.dns_capture;
  return o;
}

json::object pod_record_to_json(const PodRecord& record) {
  json::object o;
  o["spec"] = pod_spec_to_json(record.spec);
  json::object id;
  id["dev"] = static_cast<std::uint64_t>(record.netns_id.dev);
  id["ino"] = static_cast<std::uint64_t>(record.netns_id.ino);
  o["netnsId"] = std::move(id);
  o["status"] = to_string(record.status);
  o["source"] = to_string(record.source);
  o["createdAtMs"] = record.created_at;
  o["updatedAtMs"] = record.updated_at;
  return o;
}

Result<PodSpec> pod_spec_from_json(const json::value& v, const std::string& path) {
  auto reader = JsonObjectReader::open(v, path);
  if (!reader) return std::move(reader).error();
  const JsonObjectReader& r = *reader;
  AMBIENT_TRY(r.reject_unknown_keys({"uid", "name", "namespace", "serviceAccount", "netns", "ips", "dnsCapture"}));

  PodSpec spec;
  auto uid = r.required_string("uid");
  if (!uid) return std::move(uid).error();
  auto name = r.required_string("name");
  if (!name) return std::move(name).error();
  auto ns = r.required_string("namespace");
  if (!ns) return std::move(ns).error();
  auto sa = r.optional_string("serviceAccount");
  if (!sa) return std::move(sa).error();
  auto netns = r.required_string("netns");
  if (!netns) return std::move(netns).error();
  auto dns = r.optional_bool("dnsCapture");
  if (!dns) return std::move(dns).error();
  auto ips = r.array("ips", false);
  if (!ips) return std::move(ips).error();
  spec.uid = std::move(*uid);
  spec.name = std::move(*name);
  spec.namespace_ = std::move(*ns);
  spec.service_account = std::move(*sa);
  spec.netns = std::move(*netns);
  spec.options.dns_capture = *dns;
  if (*ips != nullptr) {
    if ((*ips)->size() > kMaxPodIps) {
      return errorf(ErrorKind::InvalidArgument, "{}: {} addresses, more than the {} allowed", r.field_path("ips"),
                    (*ips)->size(), kMaxPodIps);
    }
    for (std::size_t i = 0; i < (*ips)->size(); ++i) {
      const json::value& item = (**ips)[i];
      const json::string* text = item.if_string();
      if (text == nullptr) {
        return errorf(ErrorKind::InvalidArgument, "{}[{}]: expected a string, got {}", r.field_path("ips"), i,
                      describe_json(item));
      }
      auto ip = canonical_ip(std::string_view(text->data(), text->size()));
      if (!ip) return errorf(ErrorKind::InvalidArgument, "{}[{}]: {}", r.field_path("ips"), i, ip.error().context);
      spec.ips.push_back(std::move(*ip));
    }
  }
  auto valid = validate_pod_spec(spec);
  if (!valid) return at_path(std::move(valid).error(), path);
  return spec;
}

Result<PodRecord> pod_record_from_json(const json::value& v, const std::string& path) {
  auto reader = JsonObjectReader::open(v, path);
  if (!reader) return std::move(reader).error();
  const JsonObjectReader& r = *reader;
  AMBIENT_TRY(r.reject_unknown_keys({"spec", "netnsId", "status", "source", "createdAtMs", "updatedAtMs"}));

  PodRecord record;
  const json::value* spec = r.find("spec");
  if (spec == nullptr) return errorf(ErrorKind::InvalidArgument, "{}: missing", r.field_path("spec"));
  auto parsed_spec = pod_spec_from_json(*spec, r.field_path("spec"));
  if (!parsed_spec) return std::move(parsed_spec).error();
  record.spec = std::move(*parsed_spec);

  const json::value* id = r.find("netnsId");
  if (id == nullptr) return errorf(ErrorKind::InvalidArgument, "{}: missing", r.field_path("netnsId"));
  auto id_reader = JsonObjectReader::open(*id, r.field_path("netnsId"));
  if (!id_reader) return std::move(id_reader).error();
  AMBIENT_TRY(id_reader->reject_unknown_keys({"dev", "ino"}));
  auto dev = id_reader->required_uint64("dev");
  if (!dev) return std::move(dev).error();
  auto ino = id_reader->required_uint64("ino");
  if (!ino) return std::move(ino).error();
  record.netns_id = net::NetnsId{static_cast<dev_t>(*dev), static_cast<ino_t>(*ino)};

  auto status_text = r.required_string("status");
  if (!status_text) return std::move(status_text).error();
  auto status = parse_pod_status(*status_text);
  if (!status) return errorf(ErrorKind::InvalidArgument, "{}: {}", r.field_path("status"), status.error().context);
  record.status = *status;

  auto source_text = r.required_string("source");
  if (!source_text) return std::move(source_text).error();
  auto source = parse_pod_source_kind(*source_text);
  if (!source) return errorf(ErrorKind::InvalidArgument, "{}: {}", r.field_path("source"), source.error().context);
  record.source = *source;

  auto created = r.required_int64("createdAtMs");
  if (!created) return std::move(created).error();
  auto updated = r.required_int64("updatedAtMs");
  if (!updated) return std::move(updated).error();
  record.created_at = *created;
  record.updated_at = *updated;
  return record;
}

}  // namespace ambient::cni
