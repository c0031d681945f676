// The live progress line: one line on stderr, redrawn in place with '\r',
// only when stderr is a terminal (never in a pipe, a file or CI logs).
//
//   progress_line line(stderr);              // enabled() == isatty(fileno(stderr))
//   o.on_progress = [&](const progress& p) { line.update(p); };
//   ... run ...
//   line.clear();                            // erases it before the table is printed
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

#include "options.hpp"

namespace ringflow::lab {

std::string format_progress(const progress& p);

class progress_line {
 public:
  explicit progress_line(std::FILE* out, bool allowed = true);
  bool enabled() const noexcept { return enabled_; }
  void update(const progress& p);
  void clear();

 private:
  std::FILE* out_;
  bool enabled_;
  bool drawn_ = false;
  std::mutex m_;  // update() runs on a worker thread, clear() on the main thread
};

}  // namespace ringflow::lab
