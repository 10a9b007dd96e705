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

}  // namespace zotune
