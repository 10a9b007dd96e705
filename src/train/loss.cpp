#include "train/loss.h"

#include <cmath>
#include <limits>

#include "base/error.h"
#include "data/eval.h"
#include "kernels/kernels.h"

namespace zotune {

namespace {

// Cross-entropy over each example's candidates (scored by their mean token
// log-likelihood), the trained label as target: one term per example.
void classification_terms(const Batch& batch, const std::vector<double>& score, std::vector<double>& terms) {
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
  terms.clear();
  for (std::size_t e = 0; e < E; ++e) terms.push_back(maxs[e] + std::log(sumexp[e]) - label_score[e]);
}

}  // namespace

BatchLoss batch_loss(const Batch& batch, const float* logits, int64_t V, AlignedBuffer<float>& scratch) {
  const auto n = static_cast<int64_t>(batch.rows.size());
  check(static_cast<int64_t>(batch.targets.size()) == n, "batch: rows and targets differ in length");
  BatchLoss r;
  r.scored = n;
  if (n == 0) return r;
  if (static_cast<int64_t>(scratch.size()) < n) scratch.reset(static_cast<std::size_t>(n));
  float* lse = scratch.data();
  kernels::logsumexp_rows(logits, n, V, lse);
  std::vector<float> lp(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = batch.targets[static_cast<std::size_t>(i)];
    check(t >= 0 && t < V, "target token id ", t, " is outside the vocabulary [0, ", V, ")");
    lp[static_cast<std::size_t>(i)] = static_cast<float>(static_cast<double>(logits[i * V + t]) - static_cast<double>(lse[i]));
  }
  return batch_loss_from_logprobs(batch, lp);
}

BatchLoss batch_loss_from_logprobs(const Batch& batch, const std::vector<float>& lp) {
  const auto n = static_cast<int64_t>(batch.rows.size());
  check(static_cast<int64_t>(lp.size()) == n && static_cast<int64_t>(batch.targets.size()) == n,
        "batch: rows, targets and log-probabilities differ in length");
  BatchLoss r;
  r.scored = n;
  if (n == 0) return r;
  std::vector<double> terms;
  if (batch.objective != Objective::Classification) {
    loss_terms_from_logprobs(batch, lp, terms);
    r.loss = loss_of_terms(terms);
    return r;
  }
  // Candidates are scored by their mean token log-likelihood (data/eval.h).
  std::vector<double> score;
  sequence_mean_logprob(batch, lp, score);
  predict_candidates(batch, score, r.predictions);
  classification_terms(batch, score, terms);
  const auto E = static_cast<std::size_t>(batch.num_examples);
  for (std::size_t e = 0; e < E; ++e)
    if (r.predictions[e] == batch.labels[e]) ++r.correct;
  r.examples = static_cast<int64_t>(E);
  r.loss = loss_of_terms(terms);
  return r;
}

void loss_terms_from_logprobs(const Batch& batch, const std::vector<float>& lp, std::vector<double>& terms) {
  const auto n = static_cast<int64_t>(batch.rows.size());
  check(static_cast<int64_t>(lp.size()) == n && static_cast<int64_t>(batch.targets.size()) == n,
        "batch: rows, targets and log-probabilities differ in length");
  terms.clear();
  if (n == 0) return;
  if (batch.objective != Objective::Classification) {
    for (int64_t i = 0; i < n; ++i) terms.push_back(-static_cast<double>(lp[static_cast<std::size_t>(i)]));
    return;
  }
  std::vector<double> score;
  sequence_mean_logprob(batch, lp, score);
  classification_terms(batch, score, terms);
}

double loss_of_terms(const std::vector<double>& terms) {
  if (terms.empty()) return 0.0;
  double sum = 0;
  for (double t : terms) sum += t;
  return sum / static_cast<double>(terms.size());
}

void LogProbAccumulator::reset(const std::vector<int32_t>& targets, int64_t V) {
  for (int32_t t : targets)
    check(t >= 0 && t < V, "target token id ", t, " is outside the vocabulary [0, ", V, ")");
  targets_ = &targets;
  lse_.assign(targets.size(), -std::numeric_limits<double>::infinity());
  target_logit_.assign(targets.size(), 0.0f);
  chunk_lse_.resize(targets.size());
}

void LogProbAccumulator::add(const float* logits, int64_t ld, int64_t col0, int64_t cols, int64_t row0,
                             int64_t rows) {
  const auto all = static_cast<int64_t>(lse_.size());
  const int64_t n = rows < 0 ? all - row0 : rows;
  check(row0 >= 0 && n >= 0 && row0 + n <= all, "logprob accumulator: rows [", row0, ", ", row0 + n, ") of ", all);
  float* cl = chunk_lse_.data() + row0;
  if (ld == cols) kernels::logsumexp_rows(logits, n, cols, cl);
  else
    for (int64_t i = 0; i < n; ++i) kernels::logsumexp_rows(logits + i * ld, 1, cols, cl + i);
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(row0 + i);
    const double a = lse_[k], b = chunk_lse_[k];
    const double hi = std::max(a, b), lo = std::min(a, b);
    lse_[k] = std::isinf(lo) && lo < 0 ? hi : hi + std::log1p(std::exp(lo - hi));
    const int64_t t = (*targets_)[k];
    if (t >= col0 && t < col0 + cols) target_logit_[k] = logits[i * ld + (t - col0)];
  }
}

void LogProbAccumulator::finish(std::vector<float>& lp) const {
  lp.resize(lse_.size());
  for (std::size_t k = 0; k < lse_.size(); ++k)
    lp[k] = static_cast<float>(static_cast<double>(target_logit_[k]) - lse_[k]);
}

}  // namespace zotune
