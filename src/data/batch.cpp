#include "data/batch.h"

#include <algorithm>

#include "base/error.h"

namespace zotune {

Batch language_model_batch(std::vector<int32_t> ids, int64_t B, int64_t T) {
  check(B > 0 && T > 0 && static_cast<int64_t>(ids.size()) == B * T, "language_model_batch: ", ids.size(),
        " ids for B = ", B, ", T = ", T);
  std::vector<std::vector<int32_t>> seqs;
  for (int64_t s = 0; s < B; ++s) seqs.emplace_back(ids.begin() + s * T, ids.begin() + (s + 1) * T);
  return language_model_batch(seqs, 0);
}

Batch language_model_batch(const std::vector<std::vector<int32_t>>& seqs, int32_t pad_id) {
  Batch b;
  b.objective = Objective::LanguageModel;
  b.B = static_cast<int64_t>(seqs.size());
  for (const auto& s : seqs) b.T = std::max<int64_t>(b.T, static_cast<int64_t>(s.size()));
  b.ids.assign(static_cast<std::size_t>(b.B * b.T), pad_id);
  b.mask.assign(static_cast<std::size_t>(b.B * b.T), 0);
  for (int64_t i = 0; i < b.B; ++i) {
    const auto& s = seqs[static_cast<std::size_t>(i)];
    std::copy(s.begin(), s.end(), b.ids.begin() + i * b.T);
    std::fill_n(b.mask.begin() + i * b.T, s.size(), uint8_t{1});
    for (std::size_t t = 0; t + 1 < s.size(); ++t) {
      b.rows.push_back(i * b.T + static_cast<int64_t>(t));
      b.targets.push_back(s[t + 1]);
      b.target_seq.push_back(static_cast<int32_t>(i));
    }
  }
  b.num_examples = b.B;
  return b;
}

}  // namespace zotune
