// The objectives on hand-made logits, against values computed here in double.
#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"
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

TEST(Loss, ChunkedLogProbsEqualWholeRowLogSoftmax) {
  // The streamed head's accumulator against log-softmax over whole rows in
  // double, for chunkings that split the vocabulary unevenly.
  const int64_t n = 5, V = 1000;
  std::vector<float> logits(static_cast<std::size_t>(n * V));
  for (std::size_t i = 0; i < logits.size(); ++i)
    logits[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)) * 8.0 + (i % 97 == 0 ? 20.0 : 0.0));
  const std::vector<int32_t> targets = {0, 999, 500, 333, 97};
  for (int64_t chunk : {V, int64_t{333}, int64_t{7}, int64_t{1}}) {
    LogProbAccumulator acc;
    acc.reset(targets, V);
    std::vector<float> part;
    for (int64_t c0 = 0; c0 < V; c0 += chunk) {
      const int64_t cols = std::min(chunk, V - c0);
      part.assign(static_cast<std::size_t>(n * cols), 0.0f);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < cols; ++j)
          part[static_cast<std::size_t>(r * cols + j)] = logits[static_cast<std::size_t>(r * V + c0 + j)];
      acc.add(part.data(), cols, c0, cols);
    }
    std::vector<float> lp;
    acc.finish(lp);
    ASSERT_EQ(lp.size(), targets.size());
    for (int64_t r = 0; r < n; ++r) {
      const std::vector<float> row(logits.begin() + r * V, logits.begin() + (r + 1) * V);
      EXPECT_NEAR(lp[static_cast<std::size_t>(r)], log_softmax(row, targets[static_cast<std::size_t>(r)]), 2e-5)
          << "chunk " << chunk << " row " << r;
    }
  }
  LogProbAccumulator bad;
  const std::vector<int32_t> out_of_range = {1000};
  EXPECT_THROW(bad.reset(out_of_range, V), Error);
}

}  // namespace
}  // namespace zotune
