#include "train/engine.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "model/blocks.h"
#include "train/prompt_sharing.h"
#include "zo/replay.h"

namespace zotune {

void reduce_directions(Comm& comm, const RankLayout& layout, std::span<const PassLosses> local,
                       std::vector<PassLosses>& global) {
  const std::size_t n = local.size();
  if (comm.world() == 1) {
    global.assign(local.begin(), local.end());
    return;
  }
  // Every rank's header (its tokens, the lengths of its 2n term lists; the same
  // size on every rank), then the terms themselves.
  std::vector<double> head{static_cast<double>(local.empty() ? 0 : local[0].tokens)}, body;  // exact: < 2^53
  for (const PassLosses& l : local) {
    head.push_back(static_cast<double>(l.plus.size()));
    head.push_back(static_cast<double>(l.minus.size()));
    body.insert(body.end(), l.plus.begin(), l.plus.end());
    body.insert(body.end(), l.minus.begin(), l.minus.end());
  }
  const std::vector<double> heads = comm.allgather(head), bodies = comm.allgather(body);
  check(heads.size() == head.size() * static_cast<std::size_t>(comm.world()),
        "the ranks hold different numbers of directions");
  global.assign(n * static_cast<std::size_t>(layout.groups), PassLosses{});
  double tokens = 0;
  std::size_t at = 0;
  for (int r = 0; r < comm.world(); ++r) {
    const double* h = heads.data() + static_cast<std::size_t>(r) * head.size();
    const auto g = static_cast<std::size_t>(layout.group(r));
    if (g == 0 && layout.half(r) == 0) tokens += h[0];
    for (std::size_t i = 0; i < n; ++i) {
      PassLosses& d = global[g * n + i];
      for (std::vector<double>* v : {&d.plus, &d.minus}) {
        const auto len = static_cast<std::size_t>(h[1 + 2 * i + (v == &d.minus ? 1 : 0)]);
        v->insert(v->end(), bodies.begin() + static_cast<std::ptrdiff_t>(at),
                  bodies.begin() + static_cast<std::ptrdiff_t>(at + len));
        at += len;
      }
    }
  }
  for (PassLosses& d : global) d.tokens = static_cast<int64_t>(tokens);
}

void reduce_losses(Comm& comm, const PassLosses& local, PassLosses& global) {
  std::vector<PassLosses> all;
  reduce_directions(comm, RankLayout{comm.world(), 1, 1}, {&local, 1}, all);
  global = std::move(all.at(0));
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

ZoEngine::ZoEngine(const Architecture& arch, ParamStore& store, MezoOptions opt, uint64_t run_seed, Comm& comm,
                   RankLayout layout)
    : arch_(arch), store_(store), opt_(opt), run_seed_(run_seed), comm_(comm), layout_(layout), plus_(arch), minus_(arch) {
  minus_.share_scratch(plus_);  // the passes run block b one after the other
  if (layout_.ranks() == 1) layout_.data = comm.world();  // no layout given: every rank a data slice
  check(layout_.data >= 1 && layout_.groups >= 1, "the rank layout (", layout_.flags(), ") needs positive factors");
  check(layout_.pert == 1 || layout_.pert == 2, "--pert-parallel must be 1 or 2, not ", layout_.pert);
  check(layout_.ranks() == comm.world(), "the rank layout (", layout_.flags(), ") has ", layout_.ranks(),
        " ranks, the job ", comm.world());
  check(layout_.pert == 1 || !opt_.one_sided, "--pert-parallel 2 needs both passes; --one-sided has one");
  check(opt_.directions >= 1, "--directions must be >= 1, not ", opt_.directions);
  check(opt_.directions % layout_.groups == 0, "--directions ", opt_.directions, " does not split over ",
        layout_.groups, " direction groups");
  const int per_group = opt_.directions / layout_.groups;
  half_ = layout_.pert == 1 ? -1 : layout_.half(comm.rank());
  first_dir_ = layout_.group(comm.rank()) * per_group;
  local_.resize(static_cast<std::size_t>(per_group));
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
  prefix_layout_ = share_prompts_ ? prompt_layout(batch) : PrefixLayout{};
  plus_.start(remapped_.data(), batch.mask.data(), batch.B, batch.T, &prefix_layout_);
  if (two) minus_.start(remapped_.data(), batch.mask.data(), batch.B, batch.T, &prefix_layout_);
}

BlockSession ZoEngine::acquire_block(int b, const BlockWork& work, int first) {
  BlockSession session = store_.acquire(b, work);
  const auto sp = session.copy(first);
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
  ptrs_plus_[static_cast<std::size_t>(emb)] = first == 1 && work.perturb ? rm : rp;
  ptrs_minus_[static_cast<std::size_t>(emb)] = work.perturb ? rm : rp;
  return session;
}

void ZoEngine::to_minus(BlockSession& session) {
  const auto sm = session.copy(1);
  for (int id : store_.block_tensors(session.block()))
    ptrs_minus_[static_cast<std::size_t>(id)] = sm[static_cast<std::size_t>(id)];
}

namespace {
// Logits of a chunk of lm_head rows: y[n, rows] = hidden[n, width] · chunk[rows, width]ᵀ,
// through the compute backend (the chunk is an nn.Linear-shaped [out, in] map).
void head_matmul(const float* hidden, int64_t n, const float* chunk, int64_t rows, int64_t width, float* y) {
  kernels::matmul({hidden, DType::F32, n, width, rows, 0, 0, WeightRef{chunk, DType::F32, WeightLayout::OutIn}, y});
}
}  // namespace

void ZoEngine::head_logprobs(BlockSession& session, const BlockWork& work, const Batch& batch, bool two, int first) {
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
    head_matmul(hp, n, first == 1 ? c.minus : c.plus, c.rows, Wd, logits);
    acc_plus_.add(logits, c.rows, c.row0, c.rows);
    if (!two) return;
    head_matmul(hm, n, c.minus, c.rows, Wd, logits);
    acc_minus_.add(logits, c.rows, c.row0, c.rows);
  });
  acc_plus_.finish(lp_plus_);
  if (two) acc_minus_.finish(lp_minus_);
}

StepResult ZoEngine::step(int64_t t, int64_t total, const Batch& batch) {
  reduce_directions(comm_, layout_, run_passes(t, batch), global_);
  return commit(t, total, global_);
}

const std::vector<PassLosses>& ZoEngine::run_passes(int64_t t, const Batch& batch) {
  BlockWork work;
  work.dist = opt_.dist;
  work.perturb = true;
  work.one_sided = opt_.one_sided;
  work.eps = opt_.eps;
  work.weight_decay = opt_.weight_decay;
  // A rank of a perturbation pair reads one working copy: the tiers make only that one.
  if (half_ >= 0) work.wanted = 1u << half_;
  const uint64_t seed = step_seed(run_seed_, t);
  for (std::size_t i = 0; i < local_.size(); ++i) {
    // The deferred update rides on the first sweep; the others read θ as it is.
    work.update = i == 0 ? pending_ : std::nullopt;
    work.seed = direction_seed(seed, first_dir_ + static_cast<int>(i));
    sweep(t, i == 0, work, batch, local_[i]);
  }
  return local_;
}

void ZoEngine::sweep(int64_t t, bool carries_update, const BlockWork& work, const Batch& batch, PassLosses& out) {
  out.tokens = batch.num_tokens();
  const int N = arch_.num_blocks();
  const bool two = half_ < 0;
  const int first = half_ == 1 ? 1 : 0;  // a minus-only rank's one pass reads copy 1
  const bool may_stop = stop_check_ && comm_.world() == 1;
  start_passes(batch, two);
  for (int b = 0; b < N; ++b) {
    // A later direction's sweep runs after the first has applied the whole update.
    if (may_stop && stop_check_()) abandon_step(t, carries_update ? b : N);
    if (b + 1 < N) store_.prefetch(b + 1);
    BlockSession session = acquire_block(b, work, first);
    if (b + 1 < N) {
      plus_.run_block(b, ptrs_plus_);
      if (!two) continue;
      to_minus(session);
      minus_.run_block(b, ptrs_minus_);
    } else {
      head_logprobs(session, work, batch, two, first);
      loss_terms_from_logprobs(batch, lp_plus_, first == 1 ? out.minus : out.plus);
      if (two) loss_terms_from_logprobs(batch, lp_minus_, out.minus);
      else (first == 1 ? out.plus : out.minus).clear();
    }
  }
}

StepResult ZoEngine::commit(int64_t t, int64_t total, const std::vector<PassLosses>& global) {
  check(static_cast<int>(global.size()) == opt_.directions, "step ", t + 1, ": losses of ", global.size(),
        " directions, expected ", opt_.directions);
  StepResult r;
  r.step = t + 1;
  r.seed = step_seed(run_seed_, t);
  r.lr = learning_rate(opt_, t, total);
  r.tokens = global[0].tokens;
  for (const PassLosses& d : global) {
    r.loss_plus_k.push_back(loss_of_terms(d.plus));
    r.loss_minus_k.push_back(loss_of_terms(d.minus));
    r.grad_k.push_back(projected_grad(opt_, r.loss_plus_k.back(), r.loss_minus_k.back()));
    r.loss_plus += r.loss_plus_k.back();
    r.loss_minus += r.loss_minus_k.back();
    r.grad += r.grad_k.back();
  }
  const auto K = static_cast<double>(global.size());
  r.loss_plus /= K;
  r.loss_minus /= K;
  r.grad /= K;
  pending_ = mezo_record(opt_, run_seed_, t, total, r.loss_plus_k, r.loss_minus_k);
  return r;
}

void ZoEngine::abandon_step(int64_t t, int b) {
  if (pending_) {
    // Units the passes finished (blocks before b, streamed tensors of those
    // blocks) hold the update; the rest get it now.
    std::vector<int64_t> from(static_cast<std::size_t>(arch_.num_blocks()), 0);
    for (int u = 0; u < b; ++u) from[static_cast<std::size_t>(u)] = 1;
    for (int id : store_.streamed_ids())
      from.push_back(arch_.tensors()[static_cast<std::size_t>(id)].block < b ? 1 : 0);
    store_.sync();  // the write-backs of the blocks before b first
    replay(store_, opt_.dist, opt_.weight_decay, {*pending_}, from);
    pending_.reset();
  }
  throw StepInterrupted{t + 1, b};
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
