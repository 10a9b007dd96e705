#include "zo/replay.h"

#include "base/error.h"
#include "store/param_store.h"

namespace zotune {

void replay(ParamStore& store, kernels::ZDist dist, float weight_decay, const std::vector<UpdateRecord>& records,
            const std::vector<int64_t>& from) {
  const Architecture& arch = store.arch();
  const int N = arch.num_blocks();
  const auto& streamed = store.streamed_ids();
  const std::size_t units = static_cast<std::size_t>(N) + streamed.size();
  check(from.empty() || from.size() == units, "replay: ", from.size(), " start points for ", units, " units");
  BlockWork work;
  work.dist = dist;
  work.weight_decay = weight_decay;
  for (std::size_t u = 0; u < units; ++u) {
    const int64_t first = from.empty() ? 0 : from[u];
    for (auto i = static_cast<std::size_t>(first); i < records.size(); ++i) {
      work.update = records[i];
      if (u < static_cast<std::size_t>(N)) {
        store.acquire(static_cast<int>(u), work).release();
        continue;
      }
      const int id = streamed[u - static_cast<std::size_t>(N)];
      const auto& spec = arch.tensors()[static_cast<std::size_t>(id)];
      const int64_t rows = spec.shape[0];
      store.stream_rows(id, work, stream_chunk_rows(spec.numel() / rows, rows), nullptr);
    }
  }
}

}  // namespace zotune
