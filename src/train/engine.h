// The ZO2 execution of MeZO-SGD: the one place that knows a step's order.
//
//   for block b = 0 .. N-1 (embeddings first, head last):
//     store.prefetch(b + 1)
//     store.acquire(b, {deferred update of step t-1, perturbation of step t})
//     x+ = block(W+, x+);  x- = block(W-, x-)        (dual forward, block resident once)
//     store.release(b)                                 (block 0 stays if the head is tied)
//   L+, L- from the head  ->  g  ->  pending update, applied at each block's
//   first touch in step t+1 (or by flush() before eval, checkpoint or export).
#pragma once
#include <cstdint>
#include <optional>

#include "data/batch.h"
#include "model/forward.h"
#include "store/param_store.h"
#include "train/loss.h"
#include "zo/mezo.h"

namespace zotune {

struct StepResult {
  int64_t step = 0;  // 1-based
  uint64_t seed = 0;
  float lr = 0;
  double loss_plus = 0, loss_minus = 0;  // loss_minus is L(θ) when one-sided
  double grad = 0;
  int64_t tokens = 0;
};

class ZoEngine {
 public:
  ZoEngine(const Architecture& arch, ParamStore& store, MezoOptions opt, uint64_t run_seed);

  // Runs step t (0-based) of `total` on `batch`; leaves its update pending.
  StepResult step(int64_t t, int64_t total, const Batch& batch);
  // Applies the pending update to every block (no perturbation).
  void flush();
  // Loss of the current weights on a batch (flushes the pending update first).
  BatchLoss evaluate(const Batch& batch);
  // A plain forward over every block with the stored weights as they are (a
  // pending update stays pending): the timing reference of `zotune bench`.
  BatchLoss forward_unflushed(const Batch& batch);

  const std::optional<PendingUpdate>& pending() const { return pending_; }
  const MezoOptions& options() const { return opt_; }
  uint64_t run_seed() const { return run_seed_; }

 private:
  double head_loss(ForwardPass& pass, ParamPtrs w, const Batch& batch, BatchLoss* stats);
  bool head_tied_to_block0() const;

  const Architecture& arch_;
  ParamStore& store_;
  MezoOptions opt_;
  uint64_t run_seed_;
  std::optional<PendingUpdate> pending_;
  ForwardPass plus_, minus_;
  AlignedBuffer<float> logits_, loss_scratch_;
};

// Re-applies logged updates to a store (replay and resume): each record's update
// on every block, in order — the same arithmetic as the training run.
void apply_updates(ParamStore& store, kernels::ZDist dist, float weight_decay,
                   const std::vector<UpdateRecord>& records);

}  // namespace zotune
