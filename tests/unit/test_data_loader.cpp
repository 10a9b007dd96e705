// Batching: the per-epoch shuffle, resumable batch_for_step, data-parallel
// shards, evaluation order, storage reuse, and the classification eval helpers.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <string>

#include "base/error.h"
#include "data/dataset.h"
#include "data/eval.h"
#include "data/loader.h"
#include "data/shuffle.h"

namespace zotune {
namespace {

// Example e is the LM sequence [e, 50 + e] (+ e % 3 extra tokens, so lengths vary).
Dataset lm_dataset(int n) {
  std::string lines;
  for (int e = 0; e < n; ++e) {
    lines += "{\"input_ids\": [" + std::to_string(e) + ", " + std::to_string(50 + e);
    for (int k = 0; k < e % 3; ++k) lines += ", 7";
    lines += "]}\n";
  }
  DatasetOptions o;
  o.vocab_size = 100;
  return Dataset::parse_jsonl(lines, "lm.jsonl", o);
}

// Example e has 2 + e % 3 candidates of varying lengths.
Dataset cls_dataset(int n) {
  std::string lines;
  for (int e = 0; e < n; ++e) {
    lines += "{\"prompt_ids\": [1";
    for (int k = 0; k < e % 4; ++k) lines += ", 2";
    lines += "], \"candidate_ids\": [";
    const int c = 2 + e % 3;
    for (int k = 0; k < c; ++k) {
      lines += std::string(k ? ", " : "") + "[" + std::to_string(10 + k);
      for (int j = 0; j < (e + k) % 3; ++j) lines += ", 3";
      lines += "]";
    }
    lines += "], \"label\": " + std::to_string(e % c) + "}\n";
  }
  DatasetOptions o;
  o.vocab_size = 100;
  return Dataset::parse_jsonl(lines, "cls.jsonl", o);
}

bool same_batch(const Batch& a, const Batch& b) {
  return a.objective == b.objective && a.B == b.B && a.T == b.T && a.ids == b.ids && a.mask == b.mask &&
         a.rows == b.rows && a.targets == b.targets && a.target_seq == b.target_seq &&
         a.seq_example == b.seq_example && a.seq_candidate == b.seq_candidate && a.labels == b.labels &&
         a.num_examples == b.num_examples && a.example_ids == b.example_ids;
}

bool is_permutation_of_iota(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] != static_cast<int64_t>(i)) return false;
  return true;
}

TEST(DataShuffle, PermutationIsAPureFunctionOfSeedAndEpoch) {
  std::vector<int64_t> a, b, c, d;
  epoch_permutation(1234, 0, 1000, a);
  epoch_permutation(1234, 0, 1000, b);
  epoch_permutation(1234, 1, 1000, c);
  epoch_permutation(1235, 0, 1000, d);
  EXPECT_TRUE(is_permutation_of_iota(a));
  EXPECT_TRUE(is_permutation_of_iota(c));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  // Not the identity and not a rotation of it.
  int fixed = 0;
  for (int i = 0; i < 1000; ++i) fixed += a[i] == i;
  EXPECT_LT(fixed, 10);
  // The order must not change between builds or machines (resumed runs rely
  // on it): values from tools/shuffle_reference.py, an independent Python
  // implementation of the same spec.
  std::vector<int64_t> small;
  epoch_permutation(42, 3, 8, small);
  EXPECT_EQ(small, (std::vector<int64_t>{2, 4, 0, 1, 7, 5, 3, 6}));
  epoch_permutation(0, 0, 8, small);
  EXPECT_EQ(small, (std::vector<int64_t>{6, 0, 3, 2, 5, 4, 7, 1}));
  epoch_permutation(2024, 1, 23, small);
  EXPECT_EQ(small, (std::vector<int64_t>{9, 19, 11, 15, 12, 3, 5, 10, 20, 2, 14, 7, 16, 22, 1, 8, 21, 17, 18, 6, 4, 13, 0}));
}

TEST(DataShuffle, DrawsAreUniform) {
  // Where element 0 lands over 5000 epochs of a 5-element shuffle: each of
  // the 5 positions expects 1000 (sd ~28); a biased Fisher-Yates would skew.
  std::vector<int> hits(5, 0);
  std::vector<int64_t> p;
  for (uint64_t epoch = 0; epoch < 5000; ++epoch) {
    epoch_permutation(7, epoch, 5, p);
    ++hits[std::find(p.begin(), p.end(), 0) - p.begin()];
  }
  for (int h : hits) {
    EXPECT_GT(h, 880);
    EXPECT_LT(h, 1120);
  }
  // shuffle_draw stays in range, also for bounds near 2^32 and beyond.
  for (uint64_t i = 0; i < 1000; ++i) {
    EXPECT_LT(shuffle_draw(1, 0, i, 3), 3u);
    EXPECT_LT(shuffle_draw(1, 0, i, (uint64_t{1} << 33) + 5), (uint64_t{1} << 33) + 5);
  }
}

TEST(DataLoader, EpochsWrapAndEachEpochVisitsEveryExampleOnce) {
  const Dataset ds = lm_dataset(10);
  LoaderOptions o;
  o.batch_size = 3;
  o.seed = 99;
  DataLoader loader(ds, o);
  std::vector<int64_t> stream, step_examples;
  for (int step = 0; step < 10; ++step) {  // 30 positions = 3 epochs
    loader.examples_for_step(step, step_examples);
    ASSERT_EQ(step_examples.size(), 3u);
    stream.insert(stream.end(), step_examples.begin(), step_examples.end());
  }
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 3; ++e) {
    epochs.emplace_back(stream.begin() + 10 * e, stream.begin() + 10 * (e + 1));
    EXPECT_TRUE(is_permutation_of_iota(epochs.back())) << "epoch " << e;
    std::vector<int64_t> expected;
    epoch_permutation(99, static_cast<uint64_t>(e), 10, expected);
    EXPECT_EQ(epochs.back(), expected);
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_DOUBLE_EQ(loader.epoch_at(5), 1.5);
}

TEST(DataLoader, BatchForStepEqualsSequentialIteration) {
  const Dataset ds = cls_dataset(23);
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 2024;
  DataLoader sequential(ds, o);
  std::vector<Batch> seq;
  Batch reused;
  for (int step = 0; step < 20; ++step) {  // ~3.5 epochs, batches straddle epoch ends
    sequential.fill(step, reused);
    seq.push_back(reused);
  }
  // A fresh loader (as after a restart) asked for steps out of order.
  DataLoader resumed(ds, o);
  for (int step : {17, 3, 19, 0, 11, 5, 6, 16, 12}) {
    EXPECT_TRUE(same_batch(resumed.batch_for_step(step), seq[step])) << "step " << step;
  }
  // The batch's content matches the dataset's sequences for the examples it names.
  const Batch& b = seq[7];
  int64_t s = 0;
  for (std::size_t k = 0; k < b.example_ids.size(); ++k) {
    const int64_t e = b.example_ids[k];
    EXPECT_EQ(b.labels[k], ds.label(e));
    for (int64_t c = 0; c < ds.num_candidates(e); ++c, ++s) {
      const auto tokens = ds.tokens(ds.first_sequence(e) + c);
      EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), b.ids.begin() + s * b.T));
      EXPECT_EQ(b.seq_example[s], static_cast<int32_t>(k));
      EXPECT_EQ(b.seq_candidate[s], c);
    }
  }
  EXPECT_EQ(s, b.B);
  // A different seed gives a different order.
  o.seed = 2025;
  DataLoader other(ds, o);
  bool differs = false;
  for (int step = 0; step < 5; ++step) differs |= !same_batch(other.batch_for_step(step), seq[step]);
  EXPECT_TRUE(differs);
}

TEST(DataLoader, NoShuffleVisitsInFileOrder) {
  const Dataset ds = lm_dataset(5);
  LoaderOptions o;
  o.batch_size = 2;
  o.shuffle = false;
  DataLoader loader(ds, o);
  std::vector<int64_t> ex;
  loader.examples_for_step(0, ex);
  EXPECT_EQ(ex, (std::vector<int64_t>{0, 1}));
  loader.examples_for_step(2, ex);
  EXPECT_EQ(ex, (std::vector<int64_t>{4, 0}));
}

TEST(DataLoader, RankShardsAreDisjointAndCoverTheGlobalBatch) {
  const Dataset ds = lm_dataset(24);
  const int world = 3;
  LoaderOptions global;
  global.batch_size = 2 * world;
  global.seed = 5;
  DataLoader whole(ds, global);
  for (int step = 0; step < 8; ++step) {  // 2 epochs
    std::vector<int64_t> all, part, expected;
    for (int rank = 0; rank < world; ++rank) {
      LoaderOptions o = global;
      o.batch_size = 2;
      o.rank = rank;
      o.world = world;
      DataLoader shard(ds, o);
      shard.examples_for_step(step, part);
      ASSERT_EQ(part.size(), 2u);
      all.insert(all.end(), part.begin(), part.end());
      const Batch b = shard.batch_for_step(step);
      EXPECT_EQ(b.example_ids, part);
    }
    whole.examples_for_step(step, expected);
    EXPECT_EQ(all, expected) << "step " << step;  // rank r holds slice r of the global batch
    EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()).size(), all.size()) << "step " << step;
  }
  LoaderOptions bad;
  bad.rank = 2;
  bad.world = 2;
  EXPECT_THROW(DataLoader(ds, bad), Error);
  bad = {};
  bad.batch_size = 0;
  EXPECT_THROW(DataLoader(ds, bad), Error);
}

TEST(DataLoader, RefillingReusesStorage) {
  const Dataset ds = cls_dataset(31);
  LoaderOptions o;
  o.batch_size = 3;
  o.seed = 1;
  DataLoader loader(ds, o);
  Batch b;
  loader.reserve(b);
  loader.fill(0, b);
  const auto ids = b.ids.data(), targets = b.targets.data();
  const auto rows = b.rows.data();
  const auto mask = b.mask.data();
  const auto caps = std::vector<std::size_t>{b.ids.capacity(), b.mask.capacity(), b.rows.capacity(),
                                             b.targets.capacity(), b.target_seq.capacity(),
                                             b.seq_example.capacity(), b.seq_candidate.capacity(),
                                             b.labels.capacity(), b.example_ids.capacity()};
  int64_t max_cells = 0;
  for (int step = 1; step < 60; ++step) {
    loader.fill(step, b);
    max_cells = std::max(max_cells, b.B * b.T);
    EXPECT_EQ(b.ids.data(), ids);
    EXPECT_EQ(b.mask.data(), mask);
    EXPECT_EQ(b.rows.data(), rows);
    EXPECT_EQ(b.targets.data(), targets);
    const auto now = std::vector<std::size_t>{b.ids.capacity(), b.mask.capacity(), b.rows.capacity(),
                                              b.targets.capacity(), b.target_seq.capacity(),
                                              b.seq_example.capacity(), b.seq_candidate.capacity(),
                                              b.labels.capacity(), b.example_ids.capacity()};
    EXPECT_EQ(now, caps) << "step " << step;
  }
  EXPECT_GT(max_cells, 0);
  // Without reserve(): a smaller batch after a larger one keeps the storage too.
  Batch c;
  EvalLoader big(ds, 10), small(ds, 2);
  big.fill(0, c);
  const auto p = c.ids.data();
  small.fill(0, c);
  EXPECT_EQ(c.ids.data(), p);
  EXPECT_EQ(c.num_examples, 2);
}

TEST(DataEval, InOrderOnceAndShardedPerRank) {
  const Dataset ds = lm_dataset(7);
  EvalLoader one(ds, 3);
  ASSERT_EQ(one.num_batches(), 3);
  std::vector<int64_t> ex;
  one.examples_for_batch(0, ex);
  EXPECT_EQ(ex, (std::vector<int64_t>{0, 1, 2}));
  one.examples_for_batch(2, ex);
  EXPECT_EQ(ex, (std::vector<int64_t>{6}));
  EXPECT_THROW(one.examples_for_batch(3, ex), Error);

  EvalLoader r0(ds, 2, 0, 2), r1(ds, 2, 1, 2);
  ASSERT_EQ(r0.num_batches(), 2);
  ASSERT_EQ(r1.num_batches(), 2);
  r0.examples_for_batch(0, ex);
  EXPECT_EQ(ex, (std::vector<int64_t>{0, 1}));
  r1.examples_for_batch(0, ex);
  EXPECT_EQ(ex, (std::vector<int64_t>{2, 3}));
  r0.examples_for_batch(1, ex);
  EXPECT_EQ(ex, (std::vector<int64_t>{4, 5}));
  r1.examples_for_batch(1, ex);
  EXPECT_EQ(ex, (std::vector<int64_t>{6}));

  EvalLoader r3(ds, 2, 3, 4);  // global batch 8 > 7 examples: rank 3 gets the 7th only
  r3.examples_for_batch(0, ex);
  EXPECT_EQ(ex, (std::vector<int64_t>{6}));
  EvalLoader r4(ds, 2, 4, 5);  // global batch 10: rank 4 gets nothing
  Batch b;
  r4.fill(0, b);
  EXPECT_EQ(b.num_examples, 0);
  EXPECT_EQ(b.B, 0);
  EXPECT_TRUE(b.ids.empty());
  EXPECT_TRUE(b.targets.empty());
}

TEST(DataEval, PredictionsAndAccuracy) {
  DatasetOptions o;
  o.vocab_size = 100;
  const Dataset ds = Dataset::parse_jsonl(
      "{\"prompt_ids\": [1], \"candidate_ids\": [[5, 6], [7]], \"label\": 0}\n"
      "{\"prompt_ids\": [1], \"candidate_ids\": [[5], [6], [7]], \"label\": [2, 1]}\n"
      "{\"prompt_ids\": [1], \"candidate_ids\": [[5], [6]], \"label\": 1}\n",
      "cls.jsonl", o);
  EvalLoader loader(ds, 3);
  Batch b;
  loader.fill(0, b);
  ASSERT_EQ(b.B, 7);
  ASSERT_EQ(b.targets.size(), 8u);  // 2 + 1, 1 + 1 + 1, 1 + 1
  // Per target: ex0 cand0 {-1, -3} (mean -2), cand1 {-2.5}; ex1 {-4}, {-1}, {-1} (tie: first);
  // ex2 {-0.5}, {-0.25}.
  const std::vector<float> logp{-1, -3, -2.5f, -4, -1, -1, -0.5f, -0.25f};
  std::vector<double> mean;
  sequence_mean_logprob(b, logp, mean);
  EXPECT_EQ(mean, (std::vector<double>{-2, -2.5, -4, -1, -1, -0.5, -0.25}));
  std::vector<int32_t> pred;
  predict_candidates(b, mean, pred);
  EXPECT_EQ(pred, (std::vector<int32_t>{0, 1, 1}));
  AccuracyCounter acc;
  acc.add(ds, b, pred);
  // ex0 right, ex1 right (1 is one of its correct candidates), ex2 right.
  EXPECT_EQ(acc.correct, 3);
  EXPECT_EQ(acc.total, 3);
  pred = {1, 0, 0};
  acc.add(ds, b, pred);
  EXPECT_EQ(acc.correct, 3);
  EXPECT_EQ(acc.total, 6);
  EXPECT_DOUBLE_EQ(acc.accuracy(), 0.5);
  EXPECT_THROW(sequence_mean_logprob(b, std::vector<float>(3), mean), Error);
}

}  // namespace
}  // namespace zotune
