// libFuzzer target for the HTTP request-parsing path: the server's own
// request_parser (http/src), driven over a read buffer exactly as the
// connection drives it (parse the head, hand the body out in reads, go on
// with the next pipelined request), without sockets.
//
// Input: two configuration bytes, then the bytes a client sends.
//   byte 0: the read buffer size (1 to 16 KiB: the socket's reads are cut at
//           every possible place) and max_header_bytes
//   byte 1: max_body_bytes and the size of the handler's body reads
// Invariants checked beside the sanitizers' (each a crash on failure):
//   - every failure is one of the statuses the server answers (400, 413,
//     431, 501) and each step makes progress (no endless loop);
//   - limits: an accepted head has at most max_header_bytes, its stored
//     target, names and values too; an accepted Content-Length is within
//     max_body_bytes; decoded body bytes never exceed max_body_bytes;
//   - body bytes never exceed what was sent: each decode step leaves the
//     decoded bytes within the raw bytes it took, and a Content-Length body
//     ends with exactly that many bytes;
//   - header() finds what a plain search over header_name(i) finds.
//
//   tests/fuzz/run.sh [SECONDS]   builds it and runs it on the seed corpus
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "request_parser.hpp"

namespace {

using ringflow::http::detail::request_parser;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "http_request_fuzz: invariant violated: %s\n", what);
  std::abort();
}
#define FUZZ_CHECK(cond)            \
  do {                              \
    if (!(cond)) violated(#cond);   \
  } while (0)

bool failure_status(int s) { return s == 400 || s == 413 || s == 431 || s == 501; }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
bool same_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// The client's bytes, handed out one socket read at a time.
struct wire {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t sent = 0;
  // Refills buf[0, n) as a socket read would; false at the end of stream.
  bool read(std::vector<char>& buf, std::size_t& parse, std::size_t& fill) {
    if (sent == size) return false;
    std::size_t n = std::min(buf.size(), size - sent);
    std::memcpy(buf.data(), data + sent, n);
    sent += n;
    parse = 0;
    fill = n;
    return true;
  }
};

void check_head(const request_parser& p) {
  const auto& lim = p.limit();
  FUZZ_CHECK(p.head_bytes() <= lim.max_header_bytes);
  std::size_t stored = p.target().size();
  for (std::size_t i = 0; i < p.header_count(); ++i) stored += p.header_name(i).size() + p.header_value(i).size();
  FUZZ_CHECK(stored <= lim.max_header_bytes);
  if (p.content_length()) FUZZ_CHECK(*p.content_length() <= lim.max_body_bytes);
  FUZZ_CHECK(!(p.chunked() && p.content_length()));
  FUZZ_CHECK(!p.method_name().empty());
  // The lookup the handlers use, against a plain search.
  for (std::string_view name : {"host", "Content-Length", "transfer-encoding", "EXPECT", "x"}) {
    std::optional<std::string_view> want;
    for (std::size_t i = 0; i < p.header_count(); ++i) {
      if (same_name(p.header_name(i), name)) {
        want = p.header_value(i);
        break;
      }
    }
    std::optional<std::string_view> got = p.header(name);
    FUZZ_CHECK(got.has_value() == want.has_value());
    if (got) FUZZ_CHECK(got->data() == want->data() && got->size() == want->size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static constexpr std::size_t buffer_sizes[] = {1, 2, 7, 64, 333, 4096, 16384, 16384};
  static constexpr std::size_t header_limits[] = {48, 300, 2048, 16384};
  static constexpr std::uint64_t body_limits[] = {0, 10, 1000, 8u << 20};
  static constexpr std::size_t read_sizes[] = {1, 5, 100, 16384};
  const std::uint8_t c0 = data[0], c1 = data[1];
  std::vector<char> in(buffer_sizes[c0 & 7]);
  request_parser::limits lim{header_limits[(c0 >> 3) & 3], body_limits[c1 & 3]};
  const std::size_t read_size = read_sizes[(c1 >> 2) & 3];
  request_parser p(lim);
  wire w{data + 2, size - 2};
  std::size_t parse = 0, fill = 0;
  std::vector<char> handler_buf(read_size);

  // At most as many requests as there are bytes (each takes some).
  for (std::size_t request = 0; request <= w.size; ++request) {
    p.begin();
    std::size_t sent_before = w.sent - (fill - parse);  // this request's first byte
    int status = 0;
    while (!p.headers_done()) {
      if (parse < fill) {
        std::size_t before = parse;
        status = p.parse_head(in.data(), parse, fill);
        if (status != 0) break;
        FUZZ_CHECK(parse > before || p.headers_done());
        continue;
      }
      if (!w.read(in, parse, fill)) return 0;  // the client closed
    }
    if (status != 0) {
      FUZZ_CHECK(failure_status(status));
      return 0;  // the server answers and closes
    }
    check_head(p);

    // The body, as the handler's reads (and then the server's discard) take it.
    std::size_t body_begin = 0, body_end = 0;
    std::uint64_t decoded = 0;
    for (;;) {
      if (body_begin < body_end) {
        std::size_t n = std::min(read_size, body_end - body_begin);
        std::memcpy(handler_buf.data(), in.data() + body_begin, n);
        body_begin += n;
        decoded += n;
        continue;
      }
      if (p.message_done()) break;
      if (parse < fill) {
        body_begin = body_end = parse;
        std::size_t before = parse;
        status = p.parse_body(in.data(), parse, fill, body_end);
        FUZZ_CHECK(body_begin <= body_end && body_end <= parse && parse <= fill);
        if (status != 0) {
          FUZZ_CHECK(status == 400 || status == 413);
          FUZZ_CHECK(p.body_bytes() + (body_end - body_begin) >= decoded);
          return 0;
        }
        FUZZ_CHECK(parse > before || p.message_done());
        continue;
      }
      if (!w.read(in, parse, fill)) return 0;  // body cut short: 400
    }
    FUZZ_CHECK(decoded == p.body_bytes());
    FUZZ_CHECK(decoded <= lim.max_body_bytes);
    std::size_t took = w.sent - (fill - parse) - sent_before;  // raw bytes of this request
    FUZZ_CHECK(decoded <= took);
    if (p.content_length()) FUZZ_CHECK(decoded == *p.content_length());
    if (!p.chunked() && !p.content_length()) FUZZ_CHECK(decoded == 0);
    if (!p.keep_alive()) return 0;  // answered with Connection: close
  }
  violated("more requests than bytes");
}
