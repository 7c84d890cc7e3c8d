// spdlog 1.x compiled into this tree from the system headers (common/deps/CMakeLists.txt): the contents of spdlog's
// own src/*.cpp (spdlog, stdout_sinks, color_sinks, file_sinks, async, cfg), so consumers build with
// SPDLOG_COMPILED_LIB exactly as against libspdlog.so. Checked against Debian's libspdlog.so.1.10: this
// defines every strong symbol that library exports.
#ifndef SPDLOG_COMPILED_LIB
#error "common/deps/spdlog.cpp needs SPDLOG_COMPILED_LIB"
#endif

#include <mutex>

#include <spdlog/async.h>
#include <spdlog/async_logger-inl.h>
#include <spdlog/cfg/helpers-inl.h>
#include <spdlog/common-inl.h>
#include <spdlog/details/backtracer-inl.h>
#include <spdlog/details/file_helper-inl.h>
#include <spdlog/details/log_msg-inl.h>
#include <spdlog/details/log_msg_buffer-inl.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/details/os-inl.h>
#include <spdlog/details/periodic_worker-inl.h>
#include <spdlog/details/registry-inl.h>
#include <spdlog/details/thread_pool-inl.h>
#include <spdlog/logger-inl.h>
#include <spdlog/pattern_formatter-inl.h>
#include <spdlog/sinks/ansicolor_sink-inl.h>
#include <spdlog/sinks/base_sink-inl.h>
#include <spdlog/sinks/basic_file_sink-inl.h>
#include <spdlog/sinks/rotating_file_sink-inl.h>
#include <spdlog/sinks/sink-inl.h>
#include <spdlog/sinks/stdout_color_sinks-inl.h>
#include <spdlog/sinks/stdout_sinks-inl.h>
#include <spdlog/spdlog-inl.h>

namespace spdlog {
using details::console_mutex;
using details::console_nullmutex;
using details::null_mutex;
}  // namespace spdlog

// src/spdlog.cpp
template SPDLOG_API spdlog::logger::logger(std::string name, sinks_init_list::iterator begin,
                                           sinks_init_list::iterator end);
template class SPDLOG_API spdlog::sinks::base_sink<std::mutex>;
template class SPDLOG_API spdlog::sinks::base_sink<spdlog::null_mutex>;

// src/stdout_sinks.cpp
template class SPDLOG_API spdlog::sinks::stdout_sink_base<spdlog::console_mutex>;
template class SPDLOG_API spdlog::sinks::stdout_sink_base<spdlog::console_nullmutex>;
template class SPDLOG_API spdlog::sinks::stdout_sink<spdlog::console_mutex>;
template class SPDLOG_API spdlog::sinks::stdout_sink<spdlog::console_nullmutex>;
template class SPDLOG_API spdlog::sinks::stderr_sink<spdlog::console_mutex>;
template class SPDLOG_API spdlog::sinks::stderr_sink<spdlog::console_nullmutex>;
#define AMBIENT_SPDLOG_FACTORIES(F, ...)                                                                   \
  template SPDLOG_API std::shared_ptr<spdlog::logger> spdlog::F<spdlog::synchronous_factory>(__VA_ARGS__); \
  template SPDLOG_API std::shared_ptr<spdlog::logger> spdlog::F<spdlog::async_factory>(__VA_ARGS__)
AMBIENT_SPDLOG_FACTORIES(stdout_logger_mt, const std::string&);
AMBIENT_SPDLOG_FACTORIES(stdout_logger_st, const std::string&);
AMBIENT_SPDLOG_FACTORIES(stderr_logger_mt, const std::string&);
AMBIENT_SPDLOG_FACTORIES(stderr_logger_st, const std::string&);

// src/color_sinks.cpp
template class SPDLOG_API spdlog::sinks::ansicolor_sink<spdlog::console_mutex>;
template class SPDLOG_API spdlog::sinks::ansicolor_sink<spdlog::console_nullmutex>;
template class SPDLOG_API spdlog::sinks::ansicolor_stdout_sink<spdlog::console_mutex>;
template class SPDLOG_API spdlog::sinks::ansicolor_stdout_sink<spdlog::console_nullmutex>;
template class SPDLOG_API spdlog::sinks::ansicolor_stderr_sink<spdlog::console_mutex>;
template class SPDLOG_API spdlog::sinks::ansicolor_stderr_sink<spdlog::console_nullmutex>;
AMBIENT_SPDLOG_FACTORIES(stdout_color_mt, const std::string&, spdlog::color_mode);
AMBIENT_SPDLOG_FACTORIES(stdout_color_st, const std::string&, spdlog::color_mode);
AMBIENT_SPDLOG_FACTORIES(stderr_color_mt, const std::string&, spdlog::color_mode);
AMBIENT_SPDLOG_FACTORIES(stderr_color_st, const std::string&, spdlog::color_mode);

// src/file_sinks.cpp
template class SPDLOG_API spdlog::sinks::basic_file_sink<std::mutex>;
template class SPDLOG_API spdlog::sinks::basic_file_sink<spdlog::null_mutex>;
template class SPDLOG_API spdlog::sinks::rotating_file_sink<std::mutex>;
template class SPDLOG_API spdlog::sinks::rotating_file_sink<spdlog::null_mutex>;

// src/async.cpp
template class SPDLOG_API spdlog::details::mpmc_blocking_queue<spdlog::details::async_msg>;
