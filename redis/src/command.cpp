// Formatting a command: hiredis's redisFormatCommandArgv, after the checks
// that keep it (and the reply stream) sane.
#include <hiredis/hiredis.h>

#include <climits>
#include <cstddef>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <ringflow/detail/redis_command.hpp>

namespace ringflow::redis::detail {

namespace {

bool same_name(std::string_view a, std::string_view upper) noexcept {
  if (a.size() != upper.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != upper[i]) return false;
  }
  return true;
}

// Commands after which replies no longer pair one to one with commands:
// pushed messages (SUBSCRIBE and its kin, MONITOR) or none (CLIENT REPLY
// OFF|SKIP). The pipeline matches replies to commands in order, so they
// would hand one command's reply to another.
void refuse_reply_changers(std::span<const std::string_view> argv) {
  static constexpr std::string_view pushers[] = {"SUBSCRIBE",  "PSUBSCRIBE",  "SSUBSCRIBE", "UNSUBSCRIBE",
                                                 "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR"};
  for (std::string_view p : pushers) {
    if (same_name(argv[0], p)) {
      throw std::invalid_argument("ringflow::redis: " + std::string(p) +
                                  " changes how the server replies: not supported on a pipelined connection");
    }
  }
  if (argv.size() >= 2 && same_name(argv[0], "CLIENT") && same_name(argv[1], "REPLY")) {
    throw std::invalid_argument("ringflow::redis: CLIENT REPLY changes how the server replies: not supported");
  }
}

}  // namespace

void command_bytes::reset() noexcept {
  if (shared_) {
    shared_.reset();
  } else if (data_) {
    redisFreeCommand(data_);
  }
  data_ = nullptr;
  size_ = 0;
}

command_bytes format_command(std::span<const std::string_view> argv) {
  if (argv.empty()) throw std::invalid_argument("ringflow::redis: a command needs at least its name");
  // hiredis counts in int: refuse what it would overflow (Redis itself takes
  // at most 512 MB per argument by default).
  if (argv.size() > static_cast<std::size_t>(INT_MAX) / 4) {
    throw std::invalid_argument("ringflow::redis: too many arguments for one command");
  }
  std::size_t total = 16;
  for (std::string_view a : argv) total += a.size() + 32;
  if (total > static_cast<std::size_t>(INT_MAX)) {
    throw std::invalid_argument("ringflow::redis: a command over 2 GiB cannot be formatted");
  }
  refuse_reply_changers(argv);

  // Short commands (nearly all) describe their arguments on the stack.
  constexpr std::size_t on_stack = 16;
  const char* stack_ptrs[on_stack];
  std::size_t stack_lens[on_stack];
  std::vector<const char*> heap_ptrs;
  std::vector<std::size_t> heap_lens;
  const char** ptrs = stack_ptrs;
  std::size_t* lens = stack_lens;
  if (argv.size() > on_stack) {
    heap_ptrs.resize(argv.size());
    heap_lens.resize(argv.size());
    ptrs = heap_ptrs.data();
    lens = heap_lens.data();
  }
  for (std::size_t i = 0; i < argv.size(); ++i) {
    ptrs[i] = argv[i].data() ? argv[i].data() : "";
    lens[i] = argv[i].size();
  }
  char* out = nullptr;
  int n = redisFormatCommandArgv(&out, static_cast<int>(argv.size()), ptrs, lens);
  if (n < 0 || !out) throw std::bad_alloc();
  return command_bytes(out, static_cast<std::size_t>(n));
}

command_bytes format_command(const std::vector<std::string>& args) {
  std::vector<std::string_view> views(args.begin(), args.end());
  return format_command(std::span<const std::string_view>(views));
}

}  // namespace ringflow::redis::detail
