#include "store/param_store.h"

#include "base/error.h"
#include "io/safetensors.h"
#include "model/blocks.h"
#include "model/weights.h"

namespace zotune {

ParamStore::ParamStore(const Architecture& arch) : arch_(arch) {
  const auto& table = arch.tensors();
  plus_.assign(table.size(), nullptr);
  minus_.assign(table.size(), nullptr);
  block_tensors_.resize(static_cast<std::size_t>(arch.num_blocks()));
  for (std::size_t i = 0; i < table.size(); ++i) {
    block_tensors_[static_cast<std::size_t>(table[i].block)].push_back(static_cast<int>(i));
    total_params_ += table[i].numel();
  }
}

void ParamStore::apply_fp32_work(int id, const BlockWork& work, float* w, float* plus, float* minus) {
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(id)];
  const int64_t n = spec.numel();
  kernels::ZoUpdate upd;
  if (work.update)
    upd = {true, work.update->seed, work.update->lr, work.update->grad, spec.decays() ? work.weight_decay : 0.0f};
  kernels::ZoPerturb pert;
  if (work.perturb) pert = {true, work.seed, work.eps};
  if (upd.active || pert.active) {
    kernels::zo_update_perturb(static_cast<uint32_t>(id), work.dist, upd, pert, 0, n, w, plus, minus);
    if (work.dist != kernels::ZDist::Ones)
      counters_.rng_draws += static_cast<uint64_t>(n) * ((upd.active ? 1 : 0) + (pert.active ? 1 : 0));
  }
  plus_[static_cast<std::size_t>(id)] = plus ? plus : w;
  minus_[static_cast<std::size_t>(id)] = minus ? minus : w;
}

RamStore::RamStore(const Architecture& arch, const Checkpoint& ckpt) : ParamStore(arch) {
  const auto& table = arch.tensors();
  weights_.resize(table.size());
  for (std::size_t i = 0; i < table.size(); ++i) {
    TensorView v = checked_view(arch, ckpt, table[i]);
    weights_[i].reset(static_cast<std::size_t>(v.numel()));
    upcast_to_f32(v, weights_[i].data());
    drop_mapped_pages(v.data, v.nbytes());
    plus_[i] = minus_[i] = weights_[i].data();
  }
  block_numel_.assign(block_tensors_.size(), 0);
  for (std::size_t b = 0; b < block_tensors_.size(); ++b)
    for (int id : block_tensors_[b]) block_numel_[b] += table[static_cast<std::size_t>(id)].numel();
  pin_block0_ = arch.head_weight_id() >= 0 && table[static_cast<std::size_t>(arch.head_weight_id())].block == 0;
}

RamStore::Slot& RamStore::slot_for(int block) {
  Slot& s = (block == 0 && pin_block0_) ? pinned_ : ring_;
  const auto n = static_cast<int64_t>(block_numel_[static_cast<std::size_t>(block)]);
  blocks::ensure(s.plus, n);
  blocks::ensure(s.minus, n);
  return s;
}

void RamStore::acquire(int block, const BlockWork& work) {
  const auto& table = arch_.tensors();
  const auto& ids = block_tensors_[static_cast<std::size_t>(block)];
  Slot* slot = work.perturb ? &slot_for(block) : nullptr;
  int64_t offset = 0;
  for (int id : ids) {
    const auto& spec = table[static_cast<std::size_t>(id)];
    const int64_t n = spec.numel();
    float* w = weights_[static_cast<std::size_t>(id)].data();
    float* plus = work.perturb ? slot->plus.data() + offset : nullptr;
    float* minus = work.perturb && !work.one_sided ? slot->minus.data() + offset : nullptr;
    apply_fp32_work(id, work, w, plus, minus);
    if (work.update || work.perturb) {
      counters_.param_bytes_read += static_cast<uint64_t>(n) * sizeof(float);
      if (work.update) counters_.param_bytes_written += static_cast<uint64_t>(n) * sizeof(float);
    }
    offset += n;
  }
}

void RamStore::release(int block) {
  // Working copies of a released block must not be used again; point back at storage.
  for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
    plus_[static_cast<std::size_t>(id)] = minus_[static_cast<std::size_t>(id)] = weights_[static_cast<std::size_t>(id)].data();
  }
}

void RamStore::read_tensor(int id, float* out) const {
  const auto& w = weights_[static_cast<std::size_t>(id)];
  std::copy(w.begin(), w.end(), out);
}

}  // namespace zotune
