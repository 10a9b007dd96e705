// The objectives on hand-made logits, against values computed here in double.
#include <gtest/gtest.h>

#include <cmath>

#include "train/loss.h"

namespace zotune {
namespace {

double log_softmax(const std::vector<float>& row, int target) {
  double m = -1e300, s = 0;
  for (float v : row) m = std::max(m, double(v));
  for (float v : row) s += std::exp(double(v) - m);
  return double(row[static_cast<std::size_t>(target)]) - m - std::log(s);
}

TEST(Loss, LanguageModelIsTheMeanNegativeLogLikelihood) {
  Batch b;
  b.objective = Objective::LanguageModel;
  b.B = 1;
  b.T = 3;
  b.rows = {0, 1};
  b.targets = {2, 0};
  b.target_seq = {0, 0};
  std::vector<std::vector<float>> rows = {{0.5f, -1.0f, 2.0f, 0.0f}, {3.0f, 1.0f, -2.0f, 0.25f}};
  std::vector<float> logits;
  for (auto& r : rows) logits.insert(logits.end(), r.begin(), r.end());
  AlignedBuffer<float> scratch;
  BatchLoss l = batch_loss(b, logits.data(), 4, scratch);
  const double want = -(log_softmax(rows[0], 2) + log_softmax(rows[1], 0)) / 2;
  EXPECT_NEAR(l.loss, want, 1e-6);
  EXPECT_EQ(l.scored, 2);
}

TEST(Loss, ClassificationIsCrossEntropyOverMeanCandidateLogLikelihoods) {
  // Example 0: candidate 0 has two tokens (rows 0, 1), candidate 1 one token (row 2); label 1.
  // Example 1: two one-token candidates (rows 3, 4); label 0.
  Batch b;
  b.objective = Objective::Classification;
  b.B = 4;
  b.T = 4;
  b.rows = {0, 1, 4, 8, 12};
  b.targets = {1, 2, 3, 0, 2};
  b.target_seq = {0, 0, 1, 2, 3};
  b.seq_example = {0, 0, 1, 1};
  b.seq_candidate = {0, 1, 0, 1};
  b.labels = {1, 0};
  b.num_examples = 2;
  std::vector<std::vector<float>> rows = {
      {0.1f, 2.0f, -0.5f, 0.3f}, {1.0f, 0.0f, 0.5f, -1.0f}, {0.0f, 0.2f, 0.4f, 3.0f}, {2.5f, 0.1f, 0.0f, 0.0f},
      {0.0f, 1.0f, -1.0f, 0.5f}};
  std::vector<float> logits;
  for (auto& r : rows) logits.insert(logits.end(), r.begin(), r.end());
  AlignedBuffer<float> scratch;
  BatchLoss l = batch_loss(b, logits.data(), 4, scratch);
  const double c00 = (log_softmax(rows[0], 1) + log_softmax(rows[1], 2)) / 2, c01 = log_softmax(rows[2], 3);
  const double c10 = log_softmax(rows[3], 0), c11 = log_softmax(rows[4], 2);
  auto ce = [](double a, double b, int label) {
    const double m = std::max(a, b), lse = m + std::log(std::exp(a - m) + std::exp(b - m));
    return lse - (label ? b : a);
  };
  EXPECT_NEAR(l.loss, (ce(c00, c01, 1) + ce(c10, c11, 0)) / 2, 1e-6);
  ASSERT_EQ(l.predictions.size(), 2u);
  EXPECT_EQ(l.predictions[0], c01 > c00 ? 1 : 0);
  EXPECT_EQ(l.predictions[1], c11 > c10 ? 1 : 0);
  EXPECT_EQ(l.correct, (l.predictions[0] == 1) + (l.predictions[1] == 0));
  EXPECT_EQ(l.examples, 2);
}

}  // namespace
}  // namespace zotune
