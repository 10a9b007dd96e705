#include "train/replica_check.h"

#include <cstring>
#include <sstream>
#include <vector>

#include "base/error.h"

namespace zotune {

uint64_t weights_checksum(const ParamStore& store) {
  constexpr int64_t kChunk = int64_t{1} << 20;
  std::vector<float> buf(static_cast<std::size_t>(kChunk));
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a over 32-bit words
  const auto& tensors = store.arch().tensors();
  for (std::size_t id = 0; id < tensors.size(); ++id) {
    const int64_t n = tensors[id].numel();
    for (int64_t at = 0; at < n; at += kChunk) {
      const int64_t count = std::min(kChunk, n - at);
      store.read_range(static_cast<int>(id), at, count, buf.data());
      for (int64_t i = 0; i < count; ++i) {
        uint32_t w;
        std::memcpy(&w, &buf[static_cast<std::size_t>(i)], sizeof w);
        h = (h ^ w) * 0x100000001B3ull;
      }
    }
  }
  return h;
}

void check_replicas(Comm& comm, const ParamStore& store, int64_t step) {
  if (comm.world() == 1) return;
  const uint64_t h = weights_checksum(store);
  const double mine[2] = {static_cast<double>(h >> 32), static_cast<double>(h & 0xFFFFFFFFull)};  // exact halves
  const std::vector<double> all = comm.allgather(mine);
  std::ostringstream bad;
  int n_bad = 0;
  for (int r = 1; r < comm.world(); ++r)
    if (all[2 * static_cast<std::size_t>(r)] != all[0] || all[2 * static_cast<std::size_t>(r) + 1] != all[1])
      bad << (n_bad++ ? ", " : "") << r;
  check(n_bad == 0, "after step ", step, " the weights of rank", n_bad > 1 ? "s " : " ", bad.str(),
        " differ from rank 0's (replicas must stay identical: a rank computed differently, e.g. other hardware, "
        "library or a memory fault); the last checkpoint is intact");
}

}  // namespace zotune
