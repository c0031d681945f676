#include "rss.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>

namespace ringflow::lab {

rss_reader::rss_reader() : fd_(::open("/proc/self/statm", O_RDONLY | O_CLOEXEC)) {
  long page = ::sysconf(_SC_PAGESIZE);
  if (page > 0) page_kib_ = page / 1024;
}

rss_reader::~rss_reader() {
  if (fd_ >= 0) ::close(fd_);
}

std::int64_t rss_reader::resident_kib() const noexcept {
  if (fd_ < 0) return 0;
  char buf[128];
  ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char* end = nullptr;
  std::strtoll(buf, &end, 10);                  // total size
  long long resident = std::strtoll(end, nullptr, 10);  // resident pages
  return resident * page_kib_;
}

void release_free_memory() noexcept {
#ifdef __GLIBC__
  ::malloc_trim(0);
#endif
}

}  // namespace ringflow::lab
