#include "train/prompt_sharing.h"

#include <algorithm>

#include "base/error.h"

namespace zotune {

PrefixLayout prompt_layout(const Batch& batch) {
  if (batch.objective != Objective::Classification || batch.B == 0) return {};
  check(static_cast<int64_t>(batch.seq_example.size()) == batch.B, "batch: ", batch.seq_example.size(),
        " example indices for ", batch.B, " sequences");
  std::vector<int64_t> needed(static_cast<std::size_t>(batch.B), 0);
  for (int64_t r : batch.rows) {
    check(r >= 0 && r < batch.B * batch.T, "batch: scored row ", r, " is outside ", batch.B, " x ", batch.T);
    auto& n = needed[static_cast<std::size_t>(r / batch.T)];
    n = std::max(n, r % batch.T + 1);
  }
  return plan_prefix_sharing(batch.ids.data(), batch.mask.data(), batch.B, batch.T, batch.seq_example.data(),
                             needed.data());
}

}  // namespace zotune
