// Classification evaluation from the trainer's per-target log-likelihoods:
// each candidate's score is the mean log-likelihood of its tokens, the
// prediction is the argmax over an example's candidates (MeZO's evaluation
// without calibration), and accuracy counts a prediction as right when it is
// any of the example's correct candidates (Dataset::is_correct).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "data/batch.h"
#include "data/dataset.h"

namespace zotune {

// out[b] = mean of target_logprob[i] over the targets i of sequence b
// (target_logprob is aligned with batch.targets). out is resized to batch.B.
void sequence_mean_logprob(const Batch& batch, std::span<const float> target_logprob, std::vector<double>& out);

// out[e] = the candidate of example e with the highest score (the first on
// ties, as numpy's argmax); out is resized to batch.num_examples.
void predict_candidates(const Batch& batch, std::span<const double> seq_score, std::vector<int32_t>& out);

struct AccuracyCounter {
  int64_t correct = 0, total = 0;
  // Adds one batch's predictions (aligned with batch.example_ids).
  void add(const Dataset& ds, const Batch& batch, std::span<const int32_t> predicted);
  double accuracy() const { return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0; }
};

}  // namespace zotune
