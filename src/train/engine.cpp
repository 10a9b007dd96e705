#include "train/engine.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "kernels/kernels.h"
#include "model/blocks.h"
#include "train/prompt_sharing.h"
#include "zo/replay.h"

namespace zotune {

void reduce_losses(Comm& comm, const PassLosses& local, PassLosses& global) {
  if (comm.world() == 1) {
    global = local;
    return;
  }
  global.plus = comm.allgather(local.plus);
  global.minus = comm.allgather(local.minus);
  double tokens = static_cast<double>(local.tokens);  // exact: < 2^53
  comm.allreduce_sum({&tokens, 1});
  global.tokens = static_cast<int64_t>(tokens);
}

EngineFootprint engine_footprint(const Architecture& arch, int64_t B, int64_t T, int threads) {
  const int64_t R = B * T, n = R, V = arch.config().vocab_size, Wd = arch.head_width();
  const auto& emb = arch.tensors()[static_cast<std::size_t>(arch.token_embedding_id())];
  const int64_t C = emb.numel() / emb.shape[0];
  const PassFootprint pass = shared_prefix_pass_footprint(arch, B, T, n, threads);
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
  layout_ = share_prompts_ ? prompt_layout(batch) : PrefixLayout{};
  plus_.start(remapped_.data(), batch.mask.data(), batch.B, batch.T, &layout_);
  if (two) minus_.start(remapped_.data(), batch.mask.data(), batch.B, batch.T, &layout_);
}

BlockSession ZoEngine::acquire_block(int b, const BlockWork& work) {
  BlockSession session = store_.acquire(b, work);
  const auto sp = session.copy(0);
  ptrs_plus_.assign(sp.begin(), sp.end());
  ptrs_minus_.assign(ptrs_plus_.size(), nullptr);
  const int emb = arch_.token_embedding_id();
  if (b != arch_.tensors()[static_cast<std::size_t>(emb)].block) return session;
  // The embedding: its update streams through storage; the batch's rows are
  // perturbed here (the only rows the passes read).
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(emb)];
  const int64_t C = spec.numel() / spec.shape[0];
  const auto U = static_cast<int64_t>(tokens_.size());
  float* rp = blocks::ensure(rows_plus_, std::max<int64_t>(U, 1) * C);
  float* rm = blocks::ensure(rows_minus_, std::max<int64_t>(U, 1) * C);
  BlockWork upd = work, rows = work;
  upd.perturb = false;
  rows.update.reset();
  const Codec fp32(DType::F32, "embedding rows");
  std::size_t k = 0;
  store_.stream_rows(emb, upd, stream_chunk_rows(C, 0, spec.shape[0]), [&](const RowChunk& c) {
    for (; k < tokens_.size() && tokens_[k] < c.row0 + c.rows; ++k) {
      const int64_t row = tokens_[k];
      // The pass only reads θ: no update is applied to these rows here.
      const ThetaSlice s{emb, row * C, C, spec.decays(), &fp32, const_cast<float*>(c.theta + (row - c.row0) * C)};
      zo_apply(rows, s, rp + static_cast<int64_t>(k) * C, work.perturb ? rm + static_cast<int64_t>(k) * C : nullptr,
               nullptr);
    }
  });
  ptrs_plus_[static_cast<std::size_t>(emb)] = rp;
  ptrs_minus_[static_cast<std::size_t>(emb)] = work.perturb ? rm : rp;
  return session;
}

void ZoEngine::to_minus(BlockSession& session) {
  const auto sm = session.copy(1);
  for (int id : store_.block_tensors(session.block()))
    ptrs_minus_[static_cast<std::size_t>(id)] = sm[static_cast<std::size_t>(id)];
}

void ZoEngine::head_logprobs(BlockSession& session, const BlockWork& work, const Batch& batch, bool two) {
  const int64_t V = arch_.config().vocab_size, Wd = arch_.head_width();
  const auto n = static_cast<int64_t>(batch.rows.size());
  const float* hp = n ? plus_.head_hidden(ptrs_plus_, batch.rows.data(), n) : nullptr;
  if (two) to_minus(session);
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
    kernels::sgemm(false, true, n, c.rows, Wd, 1.0f, hp, Wd, c.plus, Wd, 0.0f, logits, c.rows);
    acc_plus_.add(logits, c.rows, c.row0, c.rows);
    if (!two) return;
    kernels::sgemm(false, true, n, c.rows, Wd, 1.0f, hm, Wd, c.minus, Wd, 0.0f, logits, c.rows);
    acc_minus_.add(logits, c.rows, c.row0, c.rows);
  });
  acc_plus_.finish(lp_plus_);
  if (two) acc_minus_.finish(lp_minus_);
}

StepResult ZoEngine::step(int64_t t, int64_t total, const Batch& batch) {
  reduce_losses(comm_, run_passes(t, batch), global_);
  return commit(t, total, global_);
}

const PassLosses& ZoEngine::run_passes(int64_t t, const Batch& batch) {
  local_.tokens = batch.num_tokens();
  const int N = arch_.num_blocks();
  start_passes(batch, true);
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
    BlockSession session = acquire_block(b, work);
    if (b + 1 < N) {
      plus_.run_block(b, ptrs_plus_);
      to_minus(session);
      minus_.run_block(b, ptrs_minus_);
    } else {
      head_logprobs(session, work, batch, true);
      loss_terms_from_logprobs(batch, lp_plus_, local_.plus);
      loss_terms_from_logprobs(batch, lp_minus_, local_.minus);
    }
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
  pending_ = mezo_record(opt_, run_seed_, t, total, r.loss_plus, r.loss_minus);
  return r;
}

void ZoEngine::flush() {
  if (!pending_) return;
  replay(store_, opt_.dist, opt_.weight_decay, {*pending_});
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
    BlockSession session = acquire_block(b, BlockWork{});
    if (b + 1 < N) {
      plus_.run_block(b, ptrs_plus_);
    } else {
      head_logprobs(session, BlockWork{}, batch, false);
      stats = batch_loss_from_logprobs(batch, lp_plus_);
    }
  }
  return stats;
}

}  // namespace zotune
