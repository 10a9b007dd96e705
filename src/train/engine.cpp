#include "train/engine.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "kernels/kernels.h"
#include "model/blocks.h"

namespace zotune {

void update_all_blocks(ParamStore& store, const BlockWork& work) {
  const Architecture& arch = store.arch();
  BlockWork upd = work;
  upd.perturb = false;
  const int64_t chunk = stream_chunk_rows(arch.head_width(), 0, arch.config().vocab_size);
  for (int b = 0; b < arch.num_blocks(); ++b) {
    store.acquire(b, upd);
    const int emb = arch.token_embedding_id(), head = arch.head_weight_id();
    for (int id : {emb, head == emb ? -1 : head})
      if (id >= 0 && arch.tensors()[static_cast<std::size_t>(id)].block == b) store.stream_rows(id, upd, chunk, nullptr);
    store.release(b);
  }
}

void reduce_losses(Comm& comm, const PassLosses& local, PassLosses& global, int pert_parallel) {
  if (comm.world() == 1) {
    global = local;
    return;
  }
  global.plus = comm.allgather(local.plus);
  global.minus = comm.allgather(local.minus);
  double tokens = static_cast<double>(local.tokens);  // exact: < 2^53
  comm.allreduce_sum({&tokens, 1});
  global.tokens = static_cast<int64_t>(tokens) / pert_parallel;
}

EngineFootprint engine_footprint(const Architecture& arch, int64_t B, int64_t T, int threads) {
  const int64_t R = B * T, n = R, V = arch.config().vocab_size, Wd = arch.head_width();
  const auto& emb = arch.tensors()[static_cast<std::size_t>(arch.token_embedding_id())];
  const int64_t C = emb.numel() / emb.shape[0];
  const PassFootprint pass = forward_pass_footprint(arch, B, T, n, threads);
  EngineFootprint f;
  f.activations = 2 * pass.own + pass.shared;  // plus_, minus_ (minus_ shares plus_'s scratch)
  f.streaming = 2 * static_cast<uint64_t>(std::min(R, V) * C) * sizeof(float) +           // rows_plus_, rows_minus_
                static_cast<uint64_t>(n * stream_chunk_rows(Wd, n, V)) * sizeof(float);  // chunk_logits_
  return f;
}

ZoEngine::ZoEngine(const Architecture& arch, ParamStore& store, MezoOptions opt, uint64_t run_seed, Comm& comm)
    : arch_(arch), store_(store), opt_(opt), run_seed_(run_seed), comm_(comm), plus_(arch), minus_(arch) {
  minus_.share_scratch(plus_);  // the passes run block b one after the other
}

void ZoEngine::map_tokens(const Batch& batch) {
  const int64_t V = arch_.config().vocab_size;
  tokens_.assign(batch.ids.begin(), batch.ids.end());
  for (int32_t id : tokens_)
    check(id >= 0 && id < V, "token id ", id, " is outside the vocabulary [0, ", V, ")");
  std::sort(tokens_.begin(), tokens_.end());
  tokens_.erase(std::unique(tokens_.begin(), tokens_.end()), tokens_.end());
  remapped_.resize(batch.ids.size());
  for (std::size_t i = 0; i < batch.ids.size(); ++i)
    remapped_[i] = static_cast<int32_t>(std::lower_bound(tokens_.begin(), tokens_.end(), batch.ids[i]) - tokens_.begin());
}

void ZoEngine::start_passes(const Batch& batch, bool two) {
  map_tokens(batch);
  plus_.start(remapped_.data(), batch.mask.data(), batch.B, batch.T);
  if (two) minus_.start(remapped_.data(), batch.mask.data(), batch.B, batch.T);
}

void ZoEngine::acquire_block(int b, const BlockWork& work) {
  store_.acquire(b, work);
  const auto sp = store_.plus(), sm = store_.minus();
  ptrs_plus_.assign(sp.begin(), sp.end());
  ptrs_minus_.assign(sm.begin(), sm.end());
  const int emb = arch_.token_embedding_id();
  if (b != arch_.tensors()[static_cast<std::size_t>(emb)].block) return;
  // The embedding: its update streams through storage; the batch's rows are
  // perturbed here (the only rows the passes read).
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(emb)];
  const int64_t C = spec.numel() / spec.shape[0];
  const auto U = static_cast<int64_t>(tokens_.size());
  float* rp = blocks::ensure(rows_plus_, std::max<int64_t>(U, 1) * C);
  float* rm = blocks::ensure(rows_minus_, std::max<int64_t>(U, 1) * C);
  BlockWork upd = work;
  upd.perturb = false;
  const kernels::ZoPerturb pert = perturb_of(work);
  std::size_t k = 0;
  store_.stream_rows(emb, upd, stream_chunk_rows(C, 0, spec.shape[0]), [&](const RowChunk& c) {
    for (; k < tokens_.size() && tokens_[k] < c.row0 + c.rows; ++k) {
      const int64_t row = tokens_[k];
      const float* theta = c.theta + (row - c.row0) * C;
      float* p = rp + static_cast<int64_t>(k) * C;
      float* m = rm + static_cast<int64_t>(k) * C;
      if (!pert.active) {
        std::copy(theta, theta + C, p);
        continue;
      }
      // The kernel only reads `weights` when no update is active.
      kernels::zo_update_perturb(static_cast<uint32_t>(emb), work.dist, kernels::ZoUpdate{}, pert, row * C, C,
                                 const_cast<float*>(theta), p, work.one_sided ? nullptr : m);
      if (work.one_sided) std::copy(theta, theta + C, m);
    }
  });
  ptrs_plus_[static_cast<std::size_t>(emb)] = rp;
  ptrs_minus_[static_cast<std::size_t>(emb)] = work.perturb ? rm : rp;
}

void ZoEngine::to_minus(int b) {
  store_.switch_to_minus(b);
  const auto sm = store_.minus();
  for (int id : store_.block_tensors(b)) ptrs_minus_[static_cast<std::size_t>(id)] = sm[static_cast<std::size_t>(id)];
}

void ZoEngine::head_logprobs(const BlockWork& work, const Batch& batch, bool two, bool minus_only) {
  const int64_t V = arch_.config().vocab_size, Wd = arch_.head_width();
  const auto n = static_cast<int64_t>(batch.rows.size());
  const int last = arch_.num_blocks() - 1;
  if (minus_only) to_minus(last);
  const float* hp = n ? plus_.head_hidden(minus_only ? ptrs_minus_ : ptrs_plus_, batch.rows.data(), n) : nullptr;
  if (two) to_minus(last);
  const float* hm = n && two ? minus_.head_hidden(ptrs_minus_, batch.rows.data(), n) : nullptr;
  acc_plus_.reset(batch.targets, V);
  if (two) acc_minus_.reset(batch.targets, V);
  const int hid = arch_.head_weight_id();
  // A tied head was updated with the embedding at block 0 of this step.
  BlockWork hw = work;
  if (hid == arch_.token_embedding_id()) hw.update.reset();
  const int64_t chunk = stream_chunk_rows(Wd, n, V);
  float* logits = blocks::ensure(chunk_logits_, std::max<int64_t>(n, 1) * chunk);
  store_.stream_rows(hid, hw, chunk, [&](const RowChunk& c) {
    if (n == 0) return;
    kernels::sgemm(false, true, n, c.rows, Wd, 1.0f, hp, Wd, minus_only ? c.minus : c.plus, Wd, 0.0f, logits, c.rows);
    acc_plus_.add(logits, c.rows, c.row0, c.rows);
    if (!two) return;
    kernels::sgemm(false, true, n, c.rows, Wd, 1.0f, hm, Wd, c.minus, Wd, 0.0f, logits, c.rows);
    acc_minus_.add(logits, c.rows, c.row0, c.rows);
  });
  acc_plus_.finish(lp_plus_);
  if (two) acc_minus_.finish(lp_minus_);
}

StepResult ZoEngine::step(int64_t t, int64_t total, const Batch& batch) {
  reduce_losses(comm_, run_passes(t, batch), global_, pert_parallel_);
  return commit(t, total, global_);
}

const PassLosses& ZoEngine::run_passes(int64_t t, const Batch& batch) {
  local_.tokens = batch.num_tokens();
  const int N = arch_.num_blocks();
  // Perturbation parallelism: one pass here, in plus_ (on W- for half 1).
  const bool both = pert_half_ < 0, minus_only = pert_half_ == 1;
  start_passes(batch, both);
  BlockWork work;
  work.dist = opt_.dist;
  work.update = pending_;
  work.perturb = true;
  work.one_sided = opt_.one_sided;
  work.seed = step_seed(run_seed_, t);
  work.eps = opt_.eps;
  work.weight_decay = opt_.weight_decay;
  for (int b = 0; b < N; ++b) {
    if (b + 1 < N) store_.prefetch(b + 1);
    acquire_block(b, work);
    if (b + 1 < N && minus_only) {
      to_minus(b);
      plus_.run_block(b, ptrs_minus_);
    } else if (b + 1 < N) {
      plus_.run_block(b, ptrs_plus_);
      if (both) {
        to_minus(b);
        minus_.run_block(b, ptrs_minus_);
      }
    } else {
      head_logprobs(work, batch, both, minus_only);
      loss_terms_from_logprobs(batch, lp_plus_, minus_only ? local_.minus : local_.plus);
      if (both) loss_terms_from_logprobs(batch, lp_minus_, local_.minus);
      else (minus_only ? local_.plus : local_.minus).clear();
    }
    store_.release(b);
  }
  return local_;
}

StepResult ZoEngine::commit(int64_t t, int64_t total, const PassLosses& global) {
  StepResult r;
  r.step = t + 1;
  r.seed = step_seed(run_seed_, t);
  r.lr = learning_rate(opt_, t, total);
  r.tokens = global.tokens;
  r.loss_plus = loss_of_terms(global.plus);
  r.loss_minus = loss_of_terms(global.minus);
  r.grad = projected_grad(opt_, r.loss_plus, r.loss_minus);
  check(std::isfinite(r.grad), "step ", r.step, ": the loss is not finite (L+ = ", r.loss_plus, ", L- = ",
        r.loss_minus, "); lower --lr or --eps");
  pending_ = PendingUpdate{r.seed, r.lr, static_cast<float>(r.grad)};
  return r;
}

void ZoEngine::set_pert_half(int pert_parallel, int half) {
  check(pert_parallel == 1 || pert_parallel == 2, "--pert-parallel must be 1 or 2, not ", pert_parallel);
  check(pert_parallel == 1 || !opt_.one_sided, "--pert-parallel 2 needs both passes; --one-sided has one");
  check(comm_.world() % pert_parallel == 0, "--pert-parallel ", pert_parallel, " does not divide ", comm_.world(),
        " ranks");
  pert_parallel_ = pert_parallel;
  pert_half_ = pert_parallel == 1 ? -1 : half;
}

void ZoEngine::flush() {
  if (!pending_) return;
  BlockWork work;
  work.dist = opt_.dist;
  work.update = pending_;
  work.weight_decay = opt_.weight_decay;
  update_all_blocks(store_, work);
  pending_.reset();
}

BatchLoss ZoEngine::evaluate(const Batch& batch) {
  flush();
  return forward_unflushed(batch);
}

BatchLoss ZoEngine::forward_unflushed(const Batch& batch) {
  const int N = arch_.num_blocks();
  BatchLoss stats;
  start_passes(batch, false);
  for (int b = 0; b < N; ++b) {
    if (b + 1 < N) store_.prefetch(b + 1);
    acquire_block(b, BlockWork{});
    if (b + 1 < N) {
      plus_.run_block(b, ptrs_plus_);
    } else {
      head_logprobs(BlockWork{}, batch, false);
      stats = batch_loss_from_logprobs(batch, lp_plus_);
    }
    store_.release(b);
  }
  return stats;
}

void apply_updates(ParamStore& store, kernels::ZDist dist, float weight_decay, const std::vector<UpdateRecord>& records) {
  for (const auto& rec : records) {
    BlockWork work;
    work.dist = dist;
    work.update = PendingUpdate{rec.seed, rec.lr, rec.grad};
    work.weight_decay = weight_decay;
    update_all_blocks(store, work);
  }
}

}  // namespace zotune
