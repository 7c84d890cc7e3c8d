#pragma once
// Boost.Beast's HTTP parser headers, included in one place. GCC 12 with -fsanitize=address reports
// -Wmaybe-uninitialized inside Beast's basic_parser (a boost::optional returned by content_length_unchecked(),
// inlined into do_field): a false positive in the library's header, silenced here for the header only.
// Include this instead of <boost/beast/http/{basic_parser,parser,buffer_body}.hpp>; it must be the first
// inclusion of those headers in a translation unit (template bodies take the diagnostic state of where they
// are written).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
