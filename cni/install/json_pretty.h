#pragma once
// Pretty-printing a Boost.JSON value the way CNI config files are usually written (Go's
// json.MarshalIndent with two spaces, as Istio's installer writes them): one member or element per
// line, "key": value, "{}" and "[]" for empty containers, a final newline. Object members keep their
// order (Boost.JSON objects keep insertion order), so a file we rewrite keeps its key order.
//
// Round trip (what makes inserting our entry idempotent byte for byte): parse_config_json(pretty_json(v)) == v
// for every value parse_config_json returns (config_json.h: numbers correctly rounded). Doubles print as the
// shortest text that reads back to the same double and always carry a '.' or an exponent, so they stay
// doubles ("1.0" -> 1.0, not 1); infinities (what "1e999" reads as) print as 1e999 / -1e999, which read
// back as the same infinities (never "Infinity", which is not JSON). NaN, which only Boost.JSON's own
// parser makes (of "0e999"), prints as the zero that text means.
#include <string>

#include <boost/json/value.hpp>

namespace ambient::cni::install {

std::string pretty_json(const boost::json::value& v);

}  // namespace ambient::cni::install
