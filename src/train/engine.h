// The ZO2 execution of MeZO-SGD: the one place that knows a step's order.
//
//   for block b = 0 .. N-1 (embeddings first, head last):
//     store.prefetch(b + 1)
//     session = store.acquire(b, {deferred update of step t-1, this rank's q
//                                 directions of step t: seed_k = direction_seed(s_t, k)})
//     for each direction k:  x+_k = block(session.copy(2k), x+_k)
//                            x-_k = block(session.copy(2k+1), x-_k)
//                                      (2q passes, the block resident once; a tier
//                                       makes each copy when it is asked for)
//     session ends: the block is written back
//   loss terms of L+_k, L-_k from the head   run_passes: this rank's slice of the batch
//   -> reduced over ranks through the Comm   reduce_directions: fixed order (dist/layout.h)
//   -> the step's update record (mezo_record) commit: one term per direction, applied at
//      each block's first touch in step t+1 (or by flush() before eval, checkpoint or export).
// Each direction's passes compute exactly what a sweep of that direction alone
// would (--directions K in one process equals K ranks of one direction each).
// A rank of a larger layout runs part of this: its slice of the batch, one
// half of each pass pair (--pert-parallel 2), its group's directions.
//
// The token embedding and the lm_head weight ([V, width]) are streamed by rows
// (ParamStore::stream_rows), never held whole as working copies:
//   block 0:  the embedding's deferred update runs chunk by chunk; the rows of
//             the batch's distinct tokens are perturbed into two small tables
//             and the passes index those (token ids remapped to table rows).
//   head:     the lm_head (tied: the embedding again, already updated this
//             step) comes in chunks of rows as W+ and W- of direction 0, one z
//             draw per element (the engine makes a later direction's pair from
//             the chunk's θ); each chunk's logits of every pass feed a running
//             logsumexp (LogProbAccumulator), so no [rows, V] logits exist.
// The perturbation of an element is the same counter-RNG value wherever it is
// drawn, so this is the same W+ / W- as perturbing whole tensors.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "data/batch.h"
#include "dist/comm.h"
#include "dist/layout.h"
#include "model/forward.h"
#include "model/shared_prefix.h"
#include "store/param_store.h"
#include "train/loss.h"
#include "zo/mezo.h"

namespace zotune {

struct StepResult {
  int64_t step = 0;  // 1-based
  uint64_t seed = 0;
  float lr = 0;
  // Means over the step's directions (one direction: its own values).
  double loss_plus = 0, loss_minus = 0;  // loss_minus is L(θ) when one-sided
  double grad = 0;
  // Per direction (K entries): L+, L- and g of direction k.
  std::vector<double> loss_plus_k, loss_minus_k, grad_k;
  int64_t tokens = 0;
};

// What the passes of a step produced: the loss terms (train/loss.h) of the
// plus and minus pass, in example order, and the real tokens they read. On one
// rank: its slice of the global batch; after reduce_losses: the whole batch.
struct PassLosses {
  std::vector<double> plus, minus;
  int64_t tokens = 0;
};

// Every direction's PassLosses over the global batch from the ranks' own: each
// rank holds one PassLosses per direction of its group (the same count on every
// rank); direction g·n + i gets the terms of entry i of group g's ranks,
// concatenated in rank order (= slice order = example order; a perturbation
// half contributes only its pass), and the tokens of every slice once. One
// process: `local` itself.
void reduce_directions(Comm& comm, const RankLayout& layout, std::span<const PassLosses> local,
                       std::vector<PassLosses>& global);
// One direction, data parallelism only (every rank a slice).
void reduce_losses(Comm& comm, const PassLosses& local, PassLosses& global);

class ZoEngine {
 public:
  // `layout` must have comm.world() ranks; opt.directions must split over its groups.
  ZoEngine(const Architecture& arch, ParamStore& store, MezoOptions opt, uint64_t run_seed,
           Comm& comm = single_process_comm(), RankLayout layout = {});

  // Runs step t (0-based) of `total` on this rank's `batch` (its slice of the
  // global batch); leaves the step's update pending:
  //   run_passes -> reduce_directions through the Comm -> commit.
  StepResult step(int64_t t, int64_t total, const Batch& batch);
  // This rank's passes of step t: one sweep over every block for all the
  // directions of its group (applying the pending update of step t-1 on the
  // way); returns its loss terms, one PassLosses per direction.
  const std::vector<PassLosses>& run_passes(int64_t t, const Batch& batch);
  // Turns the global batch's losses of step t (one PassLosses per direction)
  // into the step's result and its pending update (the same on every rank).
  StepResult commit(int64_t t, int64_t total, const std::vector<PassLosses>& global);
  // Applies the pending update to every block (no perturbation).
  void flush();
  // Loss of the current weights on a batch (flushes the pending update first).
  BatchLoss evaluate(const Batch& batch);
  // A plain forward over every block with the stored weights as they are (a
  // pending update stays pending): the timing reference of `zotune bench`.
  BatchLoss forward_unflushed(const Batch& batch);

  // Polled before each block of a step's passes (one process only: ranks must
  // agree on where a step ends). When it returns true the step is abandoned at
  // that block boundary: the pending update of the previous step is applied to
  // the units the passes had not reached yet (blocks b.., streamed tensors of
  // later blocks), so every unit holds exactly the updates of the steps done —
  // what flush() after the previous step leaves — and StepInterrupted is
  // thrown. Nothing of the abandoned step remains (its perturbation lived in
  // the working copies only); redoing it gives the same step.
  void set_stop_check(std::function<bool()> check) { stop_check_ = std::move(check); }
  // Each prompt once (model/shared_prefix.h, train/prompt_sharing.h): the
  // candidates of a classification example share the forward of their prompt,
  // in both passes and in evaluation. On by default; off runs every sequence
  // whole (the results differ by float rounding only).
  void set_prompt_sharing(bool on) { share_prompts_ = on; }

  const std::optional<UpdateRecord>& pending() const { return pending_; }
  const MezoOptions& options() const { return opt_; }
  uint64_t run_seed() const { return run_seed_; }

 private:
  // One forward pass of a sweep: it reads working copy `copy` into passes_[slot].
  struct PassRef {
    int copy = 0, slot = 0;
  };
  // Distinct token ids of the batch and the ids remapped to their rank.
  void map_tokens(const Batch& batch);
  // The passes of a sweep with `work` (all 2q of them, or one per direction on
  // a perturbation half), started on `batch`.
  void start_passes(const Batch& batch, const BlockWork& work, bool all);
  // One sweep over every block with `work`: every pass of order_, log p of the
  // scored rows of pass i into lp_[i]. `t`: the step (for the stop check), -1
  // outside training.
  void sweep(int64_t t, const BlockWork& work, const Batch& batch);
  // The block-0 part of a sweep: the embedding's update streams through
  // storage, the batch's rows of it are perturbed into rows_[k] for every copy.
  void embedding_rows(const BlockWork& work);
  // ptrs_ for a pass over block b reading working copy k.
  void pass_ptrs(BlockSession& session, int b, int k, bool perturbed);
  // The head block's streamed lm_head: lp_[i] for every pass of order_.
  void head_logprobs(BlockSession& session, const BlockWork& work, const Batch& batch);
  // The stop check said yes before block b of step t: finish the pending update, throw.
  [[noreturn]] void abandon_step(int64_t t, int b);

  const Architecture& arch_;
  ParamStore& store_;
  MezoOptions opt_;
  uint64_t run_seed_;
  Comm& comm_;
  RankLayout layout_;
  int half_ = -1;                 // -1: both passes here; 0 / 1: only the plus / minus pass
  int first_dir_ = 0;             // this rank's directions: [first_dir_, first_dir_ + local_.size())
  std::vector<PassLosses> local_, global_;
  std::optional<UpdateRecord> pending_;
  std::function<bool()> stop_check_;
  // Pass 2k / 2k+1 of direction k (the plus / minus pass); all share passes_[0]'s scratch.
  std::vector<std::unique_ptr<SharedPrefixPass>> passes_;
  std::vector<PassRef> order_;
  PrefixLayout prefix_layout_;
  bool share_prompts_ = true;
  std::vector<const float*> ptrs_;
  std::vector<int32_t> tokens_, remapped_;
  std::vector<AlignedBuffer<float>> rows_;  // by copy: the batch's embedding rows
  AlignedBuffer<float> chunk_logits_, chunk_plus_, chunk_minus_;  // head chunk copies of directions >= 1
  std::vector<LogProbAccumulator> acc_;
  std::vector<const float*> hidden_;
  std::vector<std::vector<float>> lp_;
};

// Thrown by ZoEngine::step / run_passes when the stop check said yes at a block
// boundary: the step was abandoned and the weights are consistent (see
// set_stop_check).
struct StepInterrupted {
  int64_t step = 0;  // 1-based: the step that was abandoned
  int block = 0;     // the block it had reached
};

// Bytes a ZoEngine allocates for B x T tokens (at most B*T scored rows) and q
// directions per step in this process: its 2q passes (activations; block
// scratch shared) and, for the streamed tensors, the batch's embedding rows as
// W+ and W- tables per direction, one chunk of head logits and, with q > 1,
// one chunk of a later direction's W+ and W-.
struct EngineFootprint {
  uint64_t activations = 0, streaming = 0;
};
EngineFootprint engine_footprint(const Architecture& arch, int64_t B, int64_t T, int threads, int directions = 1);

}  // namespace zotune
