// How the http layer's sources beyond the connection (server-sent events,
// the peer address) reach a request's or a response's connection.
#pragma once

#include <ringflow/http.hpp>

#include "connection.hpp"

namespace ringflow::http::detail {

struct access {
  static connection& of(const request& r) noexcept { return *r.c_; }
  static connection& of(const response& r) noexcept { return *r.c_; }
};

}  // namespace ringflow::http::detail
