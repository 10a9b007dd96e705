#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#include "io/safetensors.h"

namespace zotune {

void drop_mapped_pages(const void* p, std::size_t bytes) {
  if (bytes == 0) return;
  static const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto b = reinterpret_cast<uintptr_t>(p) / page * page;
  const auto e = (reinterpret_cast<uintptr_t>(p) + bytes + page - 1) / page * page;
  (void)::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);  // a hint: failure only costs memory
}

void prefault_mapped_pages(const void* p, std::size_t bytes) {
#ifdef MADV_POPULATE_READ
  if (bytes == 0) return;
  static const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto b = reinterpret_cast<uintptr_t>(p) / page * page;
  const auto e = (reinterpret_cast<uintptr_t>(p) + bytes + page - 1) / page * page;
  (void)::madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_READ);  // a hint: failure costs only time
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace zotune
