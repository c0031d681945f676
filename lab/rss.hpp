// The process's resident set, read from /proc/self/statm (getrusage's
// ru_maxrss is process-wide and never goes down, so it cannot show one run's peak).
#pragma once

#include <cstdint>

namespace ringflow::lab {

class rss_reader {
 public:
  rss_reader();   // opens /proc/self/statm; reads return 0 if it is missing
  ~rss_reader();
  rss_reader(const rss_reader&) = delete;
  rss_reader& operator=(const rss_reader&) = delete;
  std::int64_t resident_kib() const noexcept;

 private:
  int fd_ = -1;
  std::int64_t page_kib_ = 4;
};

// Gives freed heap pages back to the kernel (glibc malloc_trim), so the next
// run's growth is measured from a clean start.
void release_free_memory() noexcept;

}  // namespace ringflow::lab
