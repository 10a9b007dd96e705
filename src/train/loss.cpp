#include "train/loss.h"

#include <cmath>
#include <limits>

#include "base/error.h"
#include "data/eval.h"
#include "kernels/kernels.h"

namespace zotune {

BatchLoss batch_loss(const Batch& batch, const float* logits, int64_t V, AlignedBuffer<float>& scratch) {
  const auto n = static_cast<int64_t>(batch.rows.size());
  check(static_cast<int64_t>(batch.targets.size()) == n, "batch: rows and targets differ in length");
  BatchLoss r;
  r.scored = n;
  if (n == 0) return r;
  if (static_cast<int64_t>(scratch.size()) < n) scratch.reset(static_cast<std::size_t>(n));
  float* lse = scratch.data();
  kernels::logsumexp_rows(logits, n, V, lse);
  auto logprob = [&](int64_t i) {
    const int32_t t = batch.targets[static_cast<std::size_t>(i)];
    check(t >= 0 && t < V, "target token id ", t, " is outside the vocabulary [0, ", V, ")");
    return static_cast<double>(logits[i * V + t]) - static_cast<double>(lse[i]);
  };
  if (batch.objective != Objective::Classification) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum -= logprob(i);
    r.loss = sum / static_cast<double>(n);
    return r;
  }
  // Candidates are scored by their mean token log-likelihood (data/eval.h).
  std::vector<float> lp(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) lp[static_cast<std::size_t>(i)] = static_cast<float>(logprob(i));
  std::vector<double> score;
  sequence_mean_logprob(batch, lp, score);
  predict_candidates(batch, score, r.predictions);
  // Cross-entropy over each example's candidates, the trained label as target.
  const auto E = static_cast<std::size_t>(batch.num_examples);
  std::vector<double> maxs(E, -std::numeric_limits<double>::infinity()), sumexp(E, 0.0), label_score(E, 0.0);
  for (std::size_t b = 0; b < score.size(); ++b) {
    const auto e = static_cast<std::size_t>(batch.seq_example[b]);
    maxs[e] = std::max(maxs[e], score[b]);
    if (batch.seq_candidate[b] == batch.labels[e]) label_score[e] = score[b];
  }
  for (std::size_t b = 0; b < score.size(); ++b) {
    const auto e = static_cast<std::size_t>(batch.seq_example[b]);
    sumexp[e] += std::exp(score[b] - maxs[e]);
  }
  double total = 0;
  for (std::size_t e = 0; e < E; ++e) {
    total += maxs[e] + std::log(sumexp[e]) - label_score[e];
    if (r.predictions[e] == batch.labels[e]) ++r.correct;
  }
  r.examples = static_cast<int64_t>(E);
  r.loss = E ? total / static_cast<double>(E) : 0.0;
  return r;
}

}  // namespace zotune
