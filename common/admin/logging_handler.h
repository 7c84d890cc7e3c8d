#pragma once
// The Envoy-like /logging admin endpoint (ztunnel: src/admin.rs handle_logging), on spdlog:
//
//   POST /logging                              200 "current log level is <levels>\n"
//   POST /logging?level=<lvl>                  every logger to <lvl> (log::set_level), then the listing
//   POST /logging?level=<logger>=<lvl>,...     one spdlog logger ("access", ...); ':' works as '=' too;
//                                              items apply left to right, so "info,access=debug" works
//   POST /logging?reset[&level=...]            back to the default level (info) first
//   bad level or unknown logger                400 "failed to set new level: <why>\n" + usage; nothing changed
//
// <lvl>: trace|debug|info|warn|error|critical|off. <levels> lists loggers whose level differs from the
// default logger's as "name=lvl," before the default level: "access=debug,info" (tracing's order).
#include "common/admin/http_server.h"

namespace ambient::admin {

Response handle_logging(const Request& req);

// Routes POST /logging on `server`.
void add_logging_route(HttpServer& server);

}  // namespace ambient::admin
