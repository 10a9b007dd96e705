#include "train/loss.h"

#include <cmath>
#include <limits>

#include "base/error.h"
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
  // Mean log-likelihood per sequence (= per candidate).
  std::vector<double> seq_sum(static_cast<std::size_t>(batch.B), 0.0);
  std::vector<int64_t> seq_count(static_cast<std::size_t>(batch.B), 0);
  for (int64_t i = 0; i < n; ++i) {
    const auto b = static_cast<std::size_t>(batch.target_seq[static_cast<std::size_t>(i)]);
    seq_sum[b] += logprob(i);
    ++seq_count[b];
  }
  const auto E = static_cast<std::size_t>(batch.num_examples);
  std::vector<double> best(E, -std::numeric_limits<double>::infinity()), label_score(E, 0.0), maxs(E, -1e300), sumexp(E, 0.0);
  r.predictions.assign(E, -1);
  std::vector<double> score(static_cast<std::size_t>(batch.B));
  for (std::size_t b = 0; b < score.size(); ++b) {
    score[b] = seq_count[b] ? seq_sum[b] / static_cast<double>(seq_count[b]) : -1e30;
    const auto e = static_cast<std::size_t>(batch.seq_example[b]);
    maxs[e] = std::max(maxs[e], score[b]);
  }
  for (std::size_t b = 0; b < score.size(); ++b) {
    const auto e = static_cast<std::size_t>(batch.seq_example[b]);
    const int32_t c = batch.seq_candidate[b];
    sumexp[e] += std::exp(score[b] - maxs[e]);
    if (c == batch.labels[e]) label_score[e] = score[b];
    if (score[b] > best[e]) {
      best[e] = score[b];
      r.predictions[e] = c;
    }
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
