#include "data/batch.h"

#include "base/error.h"

namespace zotune {

Batch language_model_batch(std::vector<int32_t> ids, int64_t B, int64_t T) {
  check(B > 0 && T > 0 && static_cast<int64_t>(ids.size()) == B * T, "language_model_batch: ", ids.size(),
        " ids for B = ", B, ", T = ", T);
  Batch b;
  b.objective = Objective::LanguageModel;
  b.B = B;
  b.T = T;
  b.ids = std::move(ids);
  b.mask.assign(static_cast<std::size_t>(B * T), 1);
  for (int64_t s = 0; s < B; ++s)
    for (int64_t t = 0; t + 1 < T; ++t) {
      b.rows.push_back(s * T + t);
      b.targets.push_back(b.ids[static_cast<std::size_t>(s * T + t + 1)]);
      b.target_seq.push_back(static_cast<int32_t>(s));
    }
  b.num_examples = B;
  return b;
}

}  // namespace zotune
