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

EngineFootprint engine_footprint(const Architecture& arch, int64_t B, int64_t T, int threads, int directions) {
  const int64_t R = B * T, n = R, V = arch.config().vocab_size, Wd = arch.head_width();
  const auto& emb = arch.tensors()[static_cast<std::size_t>(arch.token_embedding_id())];
  const int64_t C = emb.numel() / emb.shape[0];
  const PassFootprint pass = shared_prefix_pass_footprint(arch, B, T, n, threads);
  const auto q = static_cast<uint64_t>(std::max(directions, 1));
  const int64_t chunk = stream_chunk_rows(Wd, n, V);
  EngineFootprint f;
  f.activations = 2 * q * pass.own + pass.shared;  // passes_ (all share passes_[0]'s scratch)
  f.streaming = 2 * q * static_cast<uint64_t>(std::min(R, V) * C) * sizeof(float) +  // rows_
                static_cast<uint64_t>(n * chunk) * sizeof(float);                 // chunk_logits_
  if (q > 1) f.streaming += 2 * static_cast<uint64_t>(std::min(chunk, V) * Wd) * sizeof(float);  // chunk_plus_, _minus_
  return f;
}

ZoEngine::ZoEngine(const Architecture& arch, ParamStore& store, MezoOptions opt, uint64_t run_seed, Comm& comm,
                   RankLayout layout)
    : arch_(arch), store_(store), opt_(opt), run_seed_(run_seed), comm_(comm), layout_(layout) {
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
  for (int i = 0; i < 2 * per_group; ++i) {
    passes_.push_back(std::make_unique<SharedPrefixPass>(arch));
    if (i > 0) passes_.back()->share_scratch(*passes_[0]);  // the passes run block b one after the other
  }
  rows_.resize(passes_.size());
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

void ZoEngine::start_passes(const Batch& batch, const BlockWork& work, bool all) {
  order_.clear();
  const int first = half_ == 1 ? 1 : 0;  // a minus-only rank's one pass reads copy 2k+1
  for (int k = 0; k < work.directions(); ++k) {
    if (all && half_ < 0) {
      order_.push_back({2 * k, 2 * k});
      order_.push_back({2 * k + 1, 2 * k + 1});
    } else {
      order_.push_back({2 * k + (all ? first : 0), 2 * k});
    }
  }
  map_tokens(batch);
  prefix_layout_ = share_prompts_ ? prompt_layout(batch) : PrefixLayout{};
  for (const PassRef& p : order_)
    passes_[static_cast<std::size_t>(p.slot)]->start(remapped_.data(), batch.mask.data(), batch.B, batch.T,
                                                     &prefix_layout_);
  acc_.resize(order_.size());
  hidden_.resize(order_.size());
  lp_.resize(order_.size());
}

void ZoEngine::embedding_rows(const BlockWork& work) {
  const int emb = arch_.token_embedding_id();
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(emb)];
  const int64_t C = spec.numel() / spec.shape[0];
  const auto U = static_cast<int64_t>(tokens_.size());
  const int q = work.directions();
  for (int k = 0; k < 2 * q; ++k) blocks::ensure(rows_[static_cast<std::size_t>(k)], std::max<int64_t>(U, 1) * C);
  BlockWork upd;
  upd.dist = work.dist;
  upd.update = work.update;
  upd.weight_decay = work.weight_decay;
  const Codec fp32(DType::F32, "embedding rows");
  std::size_t j = 0;
  store_.stream_rows(emb, upd, stream_chunk_rows(C, 0, spec.shape[0]), [&](const RowChunk& c) {
    for (; j < tokens_.size() && tokens_[j] < c.row0 + c.rows; ++j) {
      const int64_t row = tokens_[j], at = static_cast<int64_t>(j) * C;
      // The passes only read θ: no update is applied to these rows here.
      const ThetaSlice s{emb, row * C, C, spec.decays(), &fp32, const_cast<float*>(c.theta + (row - c.row0) * C)};
      for (int d = 0; d < q; ++d)
        zo_direction(work, s, d, rows_[static_cast<std::size_t>(2 * d)].data() + at,
                     work.perturb ? rows_[static_cast<std::size_t>(2 * d + 1)].data() + at : nullptr);
    }
  });
}

void ZoEngine::pass_ptrs(BlockSession& session, int b, int k, bool perturbed) {
  const auto w = session.copy(k);
  ptrs_.assign(w.begin(), w.end());
  const int emb = arch_.token_embedding_id();
  if (b == arch_.tensors()[static_cast<std::size_t>(emb)].block)
    ptrs_[static_cast<std::size_t>(emb)] = rows_[static_cast<std::size_t>(perturbed ? k : 0)].data();
}

namespace {
// Logits of a chunk of lm_head rows: y[n, rows] = hidden[n, width] · chunk[rows, width]ᵀ,
// through the compute backend (the chunk is an nn.Linear-shaped [out, in] map).
void head_matmul(const float* hidden, int64_t n, const float* chunk, int64_t rows, int64_t width, float* y) {
  kernels::matmul({hidden, DType::F32, n, width, rows, 0, 0, WeightRef{chunk, DType::F32, WeightLayout::OutIn}, y});
}
}  // namespace

void ZoEngine::head_logprobs(BlockSession& session, const BlockWork& work, const Batch& batch) {
  const int64_t V = arch_.config().vocab_size, Wd = arch_.head_width();
  const auto n = static_cast<int64_t>(batch.rows.size());
  const int last = arch_.num_blocks() - 1;
  for (std::size_t i = 0; i < order_.size(); ++i) {
    pass_ptrs(session, last, order_[i].copy, work.perturb);
    hidden_[i] = n ? passes_[static_cast<std::size_t>(order_[i].slot)]->head_hidden(ptrs_, batch.rows.data(), n)
                   : nullptr;
    acc_[i].reset(batch.targets, V);
  }
  const int hid = arch_.head_weight_id();
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(hid)];
  // A tied head was updated with the embedding at block 0 of this step.
  BlockWork hw = work;
  if (hid == arch_.token_embedding_id()) hw.update.reset();
  const int64_t chunk = stream_chunk_rows(Wd, n, V);
  float* logits = blocks::ensure(chunk_logits_, std::max<int64_t>(n, 1) * chunk);
  const bool more = work.directions() > 1;
  float* cp = more ? blocks::ensure(chunk_plus_, std::min(chunk, V) * Wd) : nullptr;
  float* cm = more && !work.one_sided ? blocks::ensure(chunk_minus_, std::min(chunk, V) * Wd) : nullptr;
  const Codec fp32(DType::F32, "lm_head rows");
  store_.stream_rows(hid, hw, chunk, [&](const RowChunk& c) {
    if (n == 0) return;
    int made = 0;  // the direction of cp / cm
    for (std::size_t i = 0; i < order_.size(); ++i) {
      const int d = order_[i].copy / 2;
      const bool minus = order_[i].copy % 2 == 1;
      const float* w = minus ? c.minus : c.plus;
      if (d > 0) {
        // A later direction's pair from the chunk's θ (the tier's W± are direction 0's).
        if (made != d) {
          const ThetaSlice s{hid, c.row0 * c.cols, c.rows * c.cols, spec.decays(), &fp32, const_cast<float*>(c.theta)};
          zo_direction(work, s, d, cp, cm);
          made = d;
        }
        w = minus ? (cm ? cm : c.theta) : cp;
      }
      head_matmul(hidden_[i], n, w, c.rows, Wd, logits);
      acc_[i].add(logits, c.rows, c.row0, c.rows);
    }
  });
  for (std::size_t i = 0; i < order_.size(); ++i) acc_[i].finish(lp_[i]);
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
  work.update = pending_;  // the deferred update rides on the sweep
  // A rank of a perturbation pair reads the W+ or the W- copies: the tiers make only those.
  if (half_ >= 0) work.wanted = 1u << half_;
  const uint64_t seed = step_seed(run_seed_, t);
  work.seed = direction_seed(seed, first_dir_);
  for (std::size_t i = 1; i < local_.size(); ++i)
    work.more_seeds.push_back(direction_seed(seed, first_dir_ + static_cast<int>(i)));
  sweep(t, work, batch);
  for (PassLosses& l : local_) {
    l.tokens = batch.num_tokens();
    l.plus.clear();
    l.minus.clear();
  }
  for (std::size_t i = 0; i < order_.size(); ++i) {
    PassLosses& l = local_[static_cast<std::size_t>(order_[i].copy / 2)];
    loss_terms_from_logprobs(batch, lp_[i], order_[i].copy % 2 == 1 ? l.minus : l.plus);
  }
  return local_;
}

void ZoEngine::sweep(int64_t t, const BlockWork& work, const Batch& batch) {
  const int N = arch_.num_blocks();
  const int emb_block = arch_.tensors()[static_cast<std::size_t>(arch_.token_embedding_id())].block;
  const bool may_stop = t >= 0 && stop_check_ && comm_.world() == 1;
  start_passes(batch, work, t >= 0);
  for (int b = 0; b < N; ++b) {
    if (may_stop && stop_check_()) abandon_step(t, b);
    if (b + 1 < N) store_.prefetch(b + 1);
    BlockSession session = store_.acquire(b, work);
    if (b == emb_block) embedding_rows(work);
    if (b + 1 < N) {
      for (const PassRef& p : order_) {
        pass_ptrs(session, b, p.copy, work.perturb);
        passes_[static_cast<std::size_t>(p.slot)]->run_block(b, ptrs_);
      }
    } else {
      head_logprobs(session, work, batch);
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
  sweep(-1, BlockWork{}, batch);
  return batch_loss_from_logprobs(batch, lp_[0]);
}

}  // namespace zotune
