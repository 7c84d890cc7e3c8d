// Boost.JSON is used header-only; its implementation is compiled here, once per binary.
#include <boost/json/src.hpp>
