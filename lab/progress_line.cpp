#include "progress_line.hpp"

#include <unistd.h>

#include <fmt/format.h>

namespace ringflow::lab {

std::string format_progress(const progress& p) {
  return fmt::format("[{}/{}] {} x {}  {:.1f}/{:.1f} s  offered {}  delivered {}  buffered {}", p.run_index + 1,
                     p.run_count, to_string(p.scenario), to_string(p.strategy), p.elapsed_s, p.duration_s, p.offered,
                     p.delivered, p.depth);
}

progress_line::progress_line(std::FILE* out, bool allowed)
    : out_(out), enabled_(allowed && out != nullptr && ::isatty(::fileno(out)) == 1) {}

void progress_line::update(const progress& p) {
  if (!enabled_) return;
  std::lock_guard lock(m_);
  // \x1b[K erases what a longer previous line left behind.
  fmt::print(out_, "\r{}\x1b[K", format_progress(p));
  std::fflush(out_);
  drawn_ = true;
}

void progress_line::clear() {
  std::lock_guard lock(m_);
  if (!enabled_ || !drawn_) return;
  fmt::print(out_, "\r\x1b[K");
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace ringflow::lab
