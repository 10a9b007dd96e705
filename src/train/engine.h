// The ZO2 execution of MeZO-SGD: the one place that knows a step's order.
//
//   for block b = 0 .. N-1 (embeddings first, head last):
//     store.prefetch(b + 1)
//     store.acquire(b, {deferred update of step t-1, perturbation of step t})
//     x+ = block(W+, x+);  x- = block(W-, x-)        (dual forward, block resident once;
//                                                      lean tiers turn W+ into W- in between)
//     store.release(b)
//   loss terms of L+, L- from the head        run_passes: this rank's slice of the batch
//   -> reduced over ranks through the Comm   reduce_losses: fixed (example) order
//   -> g -> pending update                     commit: applied at each block's first
//      touch in step t+1 (or by flush() before eval, checkpoint or export).
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
#include "dist/comm.h"
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

// What the passes of a step produced: the loss terms (train/loss.h) of the
// plus and minus pass, in example order, and the real tokens they read. On one
// rank: its slice of the global batch; after reduce_losses: the whole batch.
struct PassLosses {
  std::vector<double> plus, minus;
  int64_t tokens = 0;
};

// The global batch's PassLosses from every rank's slice: terms concatenated in
// rank order (ranks hold consecutive slices, so this is example order), tokens
// summed. One process: `local` itself. With perturbation parallelism P = 2
// (rank = 2·data_rank + half) half 0 holds only plus terms and half 1 only
// minus terms, so rank order is still example order; tokens are counted P times.
void reduce_losses(Comm& comm, const PassLosses& local, PassLosses& global, int pert_parallel = 1);

class ZoEngine {
 public:
  ZoEngine(const Architecture& arch, ParamStore& store, MezoOptions opt, uint64_t run_seed,
           Comm& comm = single_process_comm());

  // Runs step t (0-based) of `total` on this rank's `batch` (its slice of the
  // global batch); leaves the step's update pending:
  //   run_passes -> reduce_losses through the Comm -> commit.
  StepResult step(int64_t t, int64_t total, const Batch& batch);
  // Both passes of step t over every block (the pending update of step t-1 is
  // applied on the way); returns this rank's loss terms.
  const PassLosses& run_passes(int64_t t, const Batch& batch);
  // Turns the global batch's losses of step t into the step's result and its
  // pending update (the same on every rank).
  StepResult commit(int64_t t, int64_t total, const PassLosses& global);
  // --pert-parallel 2: this rank runs only the plus (half 0) or the minus
  // (half 1) pass of each step; its partner runs the other on the same data.
  void set_pert_half(int pert_parallel, int half);
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
  // Distinct token ids of the batch and the ids remapped to their rank.
  void map_tokens(const Batch& batch);
  void start_passes(const Batch& batch, bool two);
  // acquire(b) plus, for block 0, the streamed embedding; fills ptrs_plus_/ptrs_minus_.
  void acquire_block(int b, const BlockWork& work);
  // Points the minus pass at block b's W- (lean tiers make it only now).
  void to_minus(int b);
  // The head block's streamed lm_head: log p(target) of each scored row for the
  // plus pass (and the minus pass when `two`).
  // `minus_only`: the one pass is the minus pass (into lp_plus_).
  void head_logprobs(const BlockWork& work, const Batch& batch, bool two, bool minus_only = false);

  const Architecture& arch_;
  ParamStore& store_;
  MezoOptions opt_;
  uint64_t run_seed_;
  Comm& comm_;
  int pert_parallel_ = 1, pert_half_ = -1;  // -1: both passes here
  PassLosses local_, global_;
  std::optional<PendingUpdate> pending_;
  ForwardPass plus_, minus_;
  std::vector<const float*> ptrs_plus_, ptrs_minus_;
  std::vector<int32_t> tokens_, remapped_;
  AlignedBuffer<float> rows_plus_, rows_minus_, chunk_logits_;
  LogProbAccumulator acc_plus_, acc_minus_;
  std::vector<float> lp_plus_, lp_minus_;
};

// Bytes a ZoEngine allocates for B x T tokens (at most B*T scored rows): its two
// passes (activations; block scratch shared) and, for the streamed tensors, the
// batch's embedding rows as W+ and W- tables and one chunk of head logits.
struct EngineFootprint {
  uint64_t activations = 0, streaming = 0;
};
EngineFootprint engine_footprint(const Architecture& arch, int64_t B, int64_t T, int threads);

// Applies `work.update` to every block and streamed tensor (no perturbation):
// flush, replay and catch-up.
void update_all_blocks(ParamStore& store, const BlockWork& work);

// Re-applies logged updates to a store (replay and resume): each record's update
// on every block, in order — the same arithmetic as the training run.
void apply_updates(ParamStore& store, kernels::ZDist dist, float weight_decay,
                   const std::vector<UpdateRecord>& records);

}  // namespace zotune
