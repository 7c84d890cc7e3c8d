#pragma once
// Parsing a CNI config file's JSON so that printing it back (json_pretty.h) and parsing again gives the
// same value: numbers that are not 64-bit integers are read correctly rounded.
//
// Why not cni/api/json_fields.h parse_json (Boost.JSON's parser): Boost.JSON 1.81 does not round every
// decimal to the nearest double ("-9223372045368775808" comes out 2 ulp off, as -9.223372045368775e+18, and
// that text as yet another double; "0e999" comes out NaN), so text -> value -> shortest text -> value could
// drift and inserting our entry twice would not give the same bytes (found by fuzz_cni_conflist). Here Boost.JSON's SAX parser
// builds the value, and each non-integer number's text is converted by strtod in the C locale (correctly
// rounded; out-of-range values become +-inf or 0 as strtod makes them). Everything else is Boost.JSON's:
// syntax, UTF-8 validation, nesting limit (32), duplicate keys (the last one wins).
#include <string_view>

#include <boost/json/value.hpp>

#include "common/base/result.h"

namespace ambient::cni::install {

// Parse errors read as parse_json's: "<what>: JSON syntax error at line 3 column 7 (byte 41): <reason>".
// Trailing whitespace is allowed, anything else after the value is refused.
Result<boost::json::value> parse_config_json(std::string_view text, std::string_view what);

}  // namespace ambient::cni::install
