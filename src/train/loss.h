// The training objectives on one batch's scored logits.
#pragma once
#include <cstdint>
#include <vector>

#include "base/aligned_buffer.h"
#include "data/batch.h"

namespace zotune {

struct BatchLoss {
  double loss = 0;        // the objective (mean over scored tokens, or over examples)
  int64_t scored = 0;     // scored tokens
  int64_t correct = 0;    // classification: examples whose best candidate is the label
  int64_t examples = 0;   // classification: examples scored
  std::vector<int32_t> predictions;  // classification: argmax candidate per example
};

// logits: [batch.rows.size(), V], row i = logits at position batch.rows[i].
//  LanguageModel / Completion: mean over targets of -log p(target).
//  Classification: mean over examples of cross-entropy over the candidates'
//  mean token log-likelihoods (MeZO's train_as_classification).
BatchLoss batch_loss(const Batch& batch, const float* logits, int64_t V, AlignedBuffer<float>& scratch);

// The same objective from log p(target) of each scored row (lp[i] for batch.rows[i]).
BatchLoss batch_loss_from_logprobs(const Batch& batch, const std::vector<float>& lp);

// The objective as the terms it sums, in example order: LanguageModel /
// Completion: -log p of each scored row (the rows of example e before those of
// e + 1); Classification: each example's cross-entropy. The loss is the sum of
// the terms, added in this order, over their count (loss_of_terms), so the
// terms of consecutive slices of a batch, concatenated, give the loss of the
// whole batch bit for bit: the data-parallel reduction (ZoEngine::step).
void loss_terms_from_logprobs(const Batch& batch, const std::vector<float>& lp, std::vector<double>& terms);
double loss_of_terms(const std::vector<double>& terms);

// log p(target) of n rows from logits that arrive in vocabulary chunks (the
// streamed lm_head): keeps a running logsumexp and each row's target logit, so
// no [n, V] logits buffer is needed. The result equals a logsumexp over whole
// rows up to float rounding of the chunk combination.
class LogProbAccumulator {
 public:
  // targets: [n] token ids in [0, V) (errors name the id otherwise).
  void reset(const std::vector<int32_t>& targets, int64_t V);
  // logits [rows, cols] of vocabulary ids [col0, col0 + cols) for rows
  // [row0, row0 + rows) (rows < 0: every row from row0), row stride ld.
  void add(const float* logits, int64_t ld, int64_t col0, int64_t cols, int64_t row0 = 0, int64_t rows = -1);
  // lp[i] = target logit - logsumexp, for every row.
  void finish(std::vector<float>& lp) const;

 private:
  const std::vector<int32_t>* targets_ = nullptr;
  std::vector<double> lse_;
  std::vector<float> target_logit_, chunk_lse_;
};

}  // namespace zotune
