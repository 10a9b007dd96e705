// Batches from a Dataset: shuffled, endless and resumable for training; in
// order and once for evaluation; sharded over data-parallel ranks.
//
// Training order. The examples form one endless stream: epoch 0 in its own
// permutation (shuffle.h), then epoch 1 in another, and so on. Step s's global
// batch is the stream's positions [s*G, (s+1)*G), G = batch_size * world, and
// rank r takes the slice [r*batch_size, (r+1)*batch_size) of it. So a batch is
// a pure function of (seed, step, rank, world) — resuming at step N needs no
// replay — every batch is full, and one batch may straddle two epochs.
//
// Batches are right-padded with the dataset's pad id (mask 0). fill() reuses
// the Batch's vectors: once they have the capacity (reserve(), or an earlier
// fill of a batch at least as large) it never allocates.
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "data/batch.h"
#include "data/dataset.h"

namespace zotune {

// Fills `out` with the examples `examples` (dataset indices) of `ds`.
void fill_batch(const Dataset& ds, std::span<const int64_t> examples, Batch& out);
// Gives `out` the capacity of any batch of up to `max_examples` examples of `ds`.
void reserve_batch(const Dataset& ds, int64_t max_examples, Batch& out);

struct LoaderOptions {
  int64_t batch_size = 1;  // examples per rank and step (Classification: each is several sequences)
  uint64_t seed = 0;       // the run seed
  bool shuffle = true;     // false: every epoch in file order
  int rank = 0, world = 1;
};

// Keeps a reference to the dataset, which must outlive it. Not thread-safe
// (it caches the current epochs' permutations).
class DataLoader {
 public:
  DataLoader(const Dataset& ds, const LoaderOptions& options);

  void fill(int64_t step, Batch& out);  // step is 0-based
  Batch batch_for_step(int64_t step);
  // This rank's dataset indices for a step, in batch order.
  void examples_for_step(int64_t step, std::vector<int64_t>& out);

  int64_t global_batch_size() const { return opt_.batch_size * opt_.world; }
  // Epochs completed before `step` (fractional), for logs.
  double epoch_at(int64_t step) const;
  void reserve(Batch& out) const { reserve_batch(ds_, opt_.batch_size, out); }
  const Dataset& dataset() const { return ds_; }
  const LoaderOptions& options() const { return opt_; }

 private:
  int64_t example_at(int64_t position);
  const std::vector<int64_t>& permutation(int64_t epoch);

  const Dataset& ds_;
  LoaderOptions opt_;
  std::array<std::vector<int64_t>, 2> perm_;  // two slots: a batch spans at most two epochs
  std::array<int64_t, 2> perm_epoch_{-1, -1};
  std::vector<int64_t> examples_;
};

// Evaluation: every example once, in file order. Global batch i covers
// examples [i*G, (i+1)*G) clipped to the dataset, rank r the r-th slice of
// batch_size; the last batch may be short, and empty for some ranks
// (num_examples == 0, B == 0), which callers must accept.
class EvalLoader {
 public:
  EvalLoader(const Dataset& ds, int64_t batch_size, int rank = 0, int world = 1);

  int64_t num_batches() const;
  void fill(int64_t i, Batch& out);
  void examples_for_batch(int64_t i, std::vector<int64_t>& out) const;
  void reserve(Batch& out) const { reserve_batch(ds_, batch_size_, out); }
  const Dataset& dataset() const { return ds_; }

 private:
  const Dataset& ds_;
  int64_t batch_size_;
  int rank_, world_;
  std::vector<int64_t> examples_;
};

}  // namespace zotune
