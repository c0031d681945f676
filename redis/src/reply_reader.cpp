// RESP values from hiredis's redisReader: its object functions build reply
// objects in place, an array's elements inside the array, the top value in
// the reader (so a reply that is a number or a status allocates nothing).
#include "reply_reader.hpp"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <algorithm>
#include <cstddef>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

namespace ringflow::redis {

long long reply::integer() const {
  if (kind_ != kind::integer) throw std::logic_error("ringflow::redis::reply::integer: the reply is not an integer");
  return integer_;
}

std::string_view reply::str() const {
  if (kind_ != kind::string && kind_ != kind::status && kind_ != kind::error) {
    throw std::logic_error("ringflow::redis::reply::str: the reply is not a string, a status or an error");
  }
  return str_.view();
}

std::span<const reply> reply::elements() const {
  if (kind_ != kind::array) throw std::logic_error("ringflow::redis::reply::elements: the reply is not an array");
  return elements_;
}

namespace detail {

struct reply_builder {
  // Where the value a read task describes goes: the next element of its
  // array (hiredis fills elements in order), or the reader's top reply.
  static reply* place(const redisReadTask* t) {
    if (t->parent) {
      auto* array = static_cast<reply*>(t->parent->obj);
      return &array->elements_.emplace_back();
    }
    auto* rr = static_cast<reply_reader*>(t->privdata);
    rr->root = reply{};
    return &rr->root;
  }

  static reply::kind string_kind(int type) noexcept {
    switch (type) {
      case REDIS_REPLY_STATUS:
        return reply::kind::status;
      case REDIS_REPLY_ERROR:
        return reply::kind::error;
      default:  // a bulk string (and, with hiredis 1.x, a verbatim string or a big number)
        return reply::kind::string;
    }
  }

  // hiredis takes a null object for out of memory. Nothing may throw
  // through its C frames.
  static void* create_string(const redisReadTask* t, char* s, std::size_t n) noexcept {
    try {
      reply* r = place(t);
      r->kind_ = string_kind(t->type);
      r->str_.assign(s, n);
      return r;
    } catch (...) {
      return nullptr;
    }
  }
  static void* create_array(const redisReadTask* t, std::size_t n) noexcept {
    try {
      reply* r = place(t);
      r->kind_ = reply::kind::array;
      // A hostile length must not make us reserve gigabytes before a single
      // element arrives: beyond this the vector grows as elements come.
      r->elements_.reserve(std::min<std::size_t>(n, 4096));
      return r;
    } catch (...) {
      return nullptr;
    }
  }
  static void* create_integer(const redisReadTask* t, long long v) noexcept {
    try {
      reply* r = place(t);
      r->kind_ = reply::kind::integer;
      r->integer_ = v;
      return r;
    } catch (...) {
      return nullptr;
    }
  }
  static void* create_nil(const redisReadTask* t) noexcept {
    try {
      return place(t);  // a fresh reply is nil
    } catch (...) {
      return nullptr;
    }
  }
  // Called for the top value only (hiredis drops a half-built reply on an
  // error); elements go with their array.
  static void free_object(void* p) noexcept { *static_cast<reply*>(p) = reply{}; }

#if HIREDIS_MAJOR >= 1
  // RESP3 (HELLO 3): a double is kept as its text, a boolean as 1 or 0;
  // maps, sets and pushes arrive as arrays (a map as key, value, ...).
  static void* create_array_1x(const redisReadTask* t, std::size_t n) noexcept { return create_array(t, n); }
  static void* create_double(const redisReadTask* t, double, char* s, std::size_t n) noexcept {
    try {
      reply* r = place(t);
      r->kind_ = reply::kind::string;
      r->str_.assign(s, n);
      return r;
    } catch (...) {
      return nullptr;
    }
  }
  static void* create_bool(const redisReadTask* t, int v) noexcept { return create_integer(t, v ? 1 : 0); }
#else
  static void* create_array_0x(const redisReadTask* t, int n) noexcept {
    return create_array(t, n > 0 ? static_cast<std::size_t>(n) : 0);
  }
#endif
};

namespace {

redisReplyObjectFunctions reply_functions = {
    .createString = &reply_builder::create_string,
#if HIREDIS_MAJOR >= 1
    .createArray = &reply_builder::create_array_1x,
    .createInteger = &reply_builder::create_integer,
    .createDouble = &reply_builder::create_double,
    .createNil = &reply_builder::create_nil,
    .createBool = &reply_builder::create_bool,
#else
    .createArray = &reply_builder::create_array_0x,
    .createInteger = &reply_builder::create_integer,
    .createNil = &reply_builder::create_nil,
#endif
    .freeObject = &reply_builder::free_object,
};

}  // namespace

reply_reader::reply_reader() : r_(redisReaderCreateWithFunctions(&reply_functions)) {
  if (!r_) throw std::bad_alloc();
  r_->privdata = this;
}

reply_reader::~reply_reader() { redisReaderFree(r_); }

bool reply_reader::feed(const char* data, std::size_t size) noexcept {
  return redisReaderFeed(r_, data, size) == REDIS_OK;
}

reply_reader::result reply_reader::next(reply& out) noexcept {
  void* obj = nullptr;
  if (redisReaderGetReply(r_, &obj) != REDIS_OK) return result::failed;
  if (!obj) return result::more;
  out = std::move(root);  // root is made afresh for the next reply (place)
  return result::reply;
}

std::string_view reply_reader::error() const noexcept { return r_->errstr; }
bool reply_reader::out_of_memory() const noexcept { return r_->err == REDIS_ERR_OOM; }

}  // namespace detail
}  // namespace ringflow::redis
