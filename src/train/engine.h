// The ZO2 execution of MeZO-SGD: the one place that knows a step's order.
//
//   for block b = 0 .. N-1 (embeddings first, head last):
//     store.prefetch(b + 1)
//     session = store.acquire(b, {deferred update of step t-1, perturbation of step t})
//     x+ = block(session.copy(0), x+);  x- = block(session.copy(1), x-)
//                                      (dual forward, block resident once; a lean
//                                       tier makes copy 1 when it is asked for)
//     session ends: the block is written back
//   L+, L- from the head  ->  the step's update record (mezo_record), applied at
//   each block's first touch in step t+1 (or by flush() before eval, checkpoint
//   or export).
//
// The token embedding and the lm_head weight ([V, width]) are streamed by rows
// (ParamStore::stream_rows), never held whole as working copies:
//   block 0:  the embedding's deferred update runs chunk by chunk; the rows of
//             the batch's distinct tokens are perturbed into two small tables
//             and the passes index those (token ids remapped to table rows).
//   head:     the lm_head (tied: the embedding again, already updated this
//             step) comes in chunks of rows as W+ and W-, one z draw per
//             element; each chunk's logits of both passes feed a running
//             logsumexp (LogProbAccumulator), so no [rows, V] logits exist.
// The perturbation of an element is the same counter-RNG value wherever it is
// drawn, so this is the same W+ / W- as perturbing whole tensors.
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

  const std::optional<UpdateRecord>& pending() const { return pending_; }
  const MezoOptions& options() const { return opt_; }
  uint64_t run_seed() const { return run_seed_; }

 private:
  // Distinct token ids of the batch and the ids remapped to their rank.
  void map_tokens(const Batch& batch);
  void start_passes(const Batch& batch, bool two);
  // acquire(b) plus, for block 0, the streamed embedding; fills ptrs_plus_ (and
  // ptrs_minus_ where the copies do not depend on the order they are asked for).
  BlockSession acquire_block(int b, const BlockWork& work);
  // Points the minus pass at the session's copy 1 (lean tiers make it only now).
  void to_minus(BlockSession& session);
  // The head block's streamed lm_head: log p(target) of each scored row for the
  // plus pass (and the minus pass when `two`).
  void head_logprobs(BlockSession& session, const BlockWork& work, const Batch& batch, bool two);

  const Architecture& arch_;
  ParamStore& store_;
  MezoOptions opt_;
  uint64_t run_seed_;
  std::optional<UpdateRecord> pending_;
  ForwardPass plus_, minus_;
  std::vector<const float*> ptrs_plus_, ptrs_minus_;
  std::vector<int32_t> tokens_, remapped_;
  AlignedBuffer<float> rows_plus_, rows_minus_, chunk_logits_;
  LogProbAccumulator acc_plus_, acc_minus_;
  std::vector<float> lp_plus_, lp_minus_;
};

}  // namespace zotune
