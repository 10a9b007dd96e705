#include "train/engine.h"

#include <cmath>

#include "base/error.h"
#include "model/blocks.h"

namespace zotune {

ZoEngine::ZoEngine(const Architecture& arch, ParamStore& store, MezoOptions opt, uint64_t run_seed)
    : arch_(arch), store_(store), opt_(opt), run_seed_(run_seed), plus_(arch), minus_(arch) {}

bool ZoEngine::head_tied_to_block0() const {
  return arch_.tensors()[static_cast<std::size_t>(arch_.head_weight_id())].block == 0;
}

double ZoEngine::head_loss(ForwardPass& pass, ParamPtrs w, const Batch& batch, BatchLoss* stats) {
  const int64_t V = arch_.config().vocab_size;
  const auto n = static_cast<int64_t>(batch.rows.size());
  float* logits = n ? blocks::ensure(logits_, n * V) : nullptr;
  if (n) pass.logits(w, batch.rows.data(), n, logits);
  BatchLoss l = batch_loss(batch, logits, V, loss_scratch_);
  if (stats) *stats = l;
  return l.loss;
}

StepResult ZoEngine::step(int64_t t, int64_t total, const Batch& batch) {
  StepResult r;
  r.step = t + 1;
  r.seed = step_seed(run_seed_, t);
  r.lr = learning_rate(opt_, t, total);
  r.tokens = batch.num_tokens();
  const int N = arch_.num_blocks();
  const bool tied = head_tied_to_block0();
  plus_.start(batch.ids.data(), batch.mask.data(), batch.B, batch.T);
  minus_.start(batch.ids.data(), batch.mask.data(), batch.B, batch.T);
  BlockWork work;
  work.dist = opt_.dist;
  work.update = pending_;
  work.perturb = true;
  work.one_sided = opt_.one_sided;
  work.seed = r.seed;
  work.eps = opt_.eps;
  work.weight_decay = opt_.weight_decay;
  for (int b = 0; b < N; ++b) {
    if (b + 1 < N) store_.prefetch(b + 1);
    store_.acquire(b, work);
    if (b + 1 < N) {
      plus_.run_block(b, store_.plus());
      minus_.run_block(b, store_.minus());
    } else {
      r.loss_plus = head_loss(plus_, store_.plus(), batch, nullptr);
      r.loss_minus = head_loss(minus_, store_.minus(), batch, nullptr);
    }
    if (!(tied && b == 0)) store_.release(b);
  }
  if (tied) store_.release(0);
  r.grad = projected_grad(opt_, r.loss_plus, r.loss_minus);
  check(std::isfinite(r.grad), "step ", r.step, ": the loss is not finite (L+ = ", r.loss_plus, ", L- = ",
        r.loss_minus, "); lower --lr or --eps");
  pending_ = PendingUpdate{r.seed, r.lr, static_cast<float>(r.grad)};
  return r;
}

void ZoEngine::flush() {
  if (!pending_) return;
  BlockWork work;
  work.dist = opt_.dist;
  work.update = pending_;
  work.weight_decay = opt_.weight_decay;
  for (int b = 0; b < arch_.num_blocks(); ++b) {
    store_.acquire(b, work);
    store_.release(b);
  }
  pending_.reset();
}

BatchLoss ZoEngine::evaluate(const Batch& batch) {
  flush();
  return forward_unflushed(batch);
}

BatchLoss ZoEngine::forward_unflushed(const Batch& batch) {
  const int N = arch_.num_blocks();
  const bool tied = head_tied_to_block0();
  BatchLoss stats;
  plus_.start(batch.ids.data(), batch.mask.data(), batch.B, batch.T);
  for (int b = 0; b < N; ++b) {
    store_.acquire(b, BlockWork{});
    if (b + 1 < N) plus_.run_block(b, store_.plus());
    else head_loss(plus_, store_.plus(), batch, &stats);
    if (!(tied && b == 0)) store_.release(b);
  }
  if (tied) store_.release(0);
  return stats;
}

void apply_updates(ParamStore& store, kernels::ZDist dist, float weight_decay, const std::vector<UpdateRecord>& records) {
  for (const auto& rec : records) {
    BlockWork work;
    work.dist = dist;
    work.update = PendingUpdate{rec.seed, rec.lr, rec.grad};
    work.weight_decay = weight_decay;
    for (int b = 0; b < store.arch().num_blocks(); ++b) {
      store.acquire(b, work);
      store.release(b);
    }
  }
}

}  // namespace zotune
