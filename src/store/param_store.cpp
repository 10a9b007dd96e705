#include "store/param_store.h"

#include <algorithm>

#include "base/error.h"
#include "io/safetensors.h"
#include "model/blocks.h"
#include "model/weights.h"

namespace zotune {

int64_t stream_chunk_rows(int64_t width, int64_t nrows, int64_t V) {
  constexpr int64_t kWeightFloats = int64_t{1} << 19, kLogitFloats = int64_t{1} << 22;
  int64_t r = kWeightFloats / std::max<int64_t>(width, 1);
  if (nrows > 0) r = std::min(r, kLogitFloats / nrows);
  return std::min(std::max<int64_t>(r, 64), std::max<int64_t>(V, 1));
}

ParamStore::ParamStore(const Architecture& arch) : arch_(arch) {
  const auto& table = arch.tensors();
  plus_.assign(table.size(), nullptr);
  minus_.assign(table.size(), nullptr);
  streamed_.assign(table.size(), 0);
  for (int id : {arch.token_embedding_id(), arch.head_weight_id()})
    if (id >= 0) streamed_[static_cast<std::size_t>(id)] = 1;
  block_tensors_.resize(static_cast<std::size_t>(arch.num_blocks()));
  block_numel_.assign(block_tensors_.size(), 0);
  for (std::size_t i = 0; i < table.size(); ++i) {
    total_params_ += table[i].numel();
    if (streamed_[i]) continue;
    const auto b = static_cast<std::size_t>(table[i].block);
    block_tensors_[b].push_back(static_cast<int>(i));
    block_numel_[b] += table[i].numel();
  }
}

kernels::ZoUpdate ParamStore::update_of(int id, const BlockWork& work) const {
  if (!work.update) return {};
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(id)];
  return {true, work.update->seed, work.update->lr, work.update->grad, spec.decays() ? work.weight_decay : 0.0f};
}

ParamStore::StreamShape ParamStore::stream_shape(int id, int64_t chunk_rows) const {
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(id)];
  check(streamed(id), "stream_rows: ", spec.name, " is not a streamed tensor");
  check(chunk_rows > 0, "stream_rows: chunk_rows must be positive (got ", chunk_rows, ")");
  const int64_t rows = spec.shape[0], cols = spec.numel() / rows;
  return {rows, cols, std::min(chunk_rows, rows) * cols};
}

void ParamStore::count_rng(int64_t n, const BlockWork& work) {
  if (work.dist != kernels::ZDist::Ones)
    counters_.rng_draws += static_cast<uint64_t>(n) * ((work.update ? 1 : 0) + (work.perturb ? 1 : 0));
}

void ParamStore::count_bytes(int64_t n, const BlockWork& work, std::size_t stored_bytes) {
  const auto un = static_cast<uint64_t>(n);
  counters_.param_bytes_read += un * stored_bytes;
  if (work.update) counters_.param_bytes_written += un * stored_bytes;
}

void ParamStore::lowbit_first(int id, kernels::LowBitFormat fmt, const BlockWork& work, uint16_t* stored, float* w) {
  const int64_t n = arch_.tensors()[static_cast<std::size_t>(id)].numel();
  const kernels::ZoUpdate upd = update_of(id, work);
  const kernels::ZoPerturb pert = perturb_of(work);
  kernels::zo_lowbit_update_perturb(static_cast<uint32_t>(id), fmt, work.dist, upd, pert, 0, n, stored,
                                    pert.active ? w : nullptr, nullptr, pert.active ? nullptr : w);
  count_rng(n, work);
  if (upd.active) counters_.rounding_draws += static_cast<uint64_t>(n);
}

void ParamStore::lowbit_minus(int id, kernels::LowBitFormat fmt, const BlockWork& work, uint16_t* stored, float* w) {
  const int64_t n = arch_.tensors()[static_cast<std::size_t>(id)].numel();
  if (work.one_sided) {  // θ: an upcast, nothing drawn
    kernels::zo_lowbit_update_perturb(static_cast<uint32_t>(id), fmt, work.dist, {}, {}, 0, n, stored, nullptr,
                                      nullptr, w);
    return;
  }
  // The perturbation with -eps: exact, x + (-a) == x - a.
  kernels::ZoPerturb pert = perturb_of(work);
  pert.eps = -pert.eps;
  kernels::zo_lowbit_update_perturb(static_cast<uint32_t>(id), fmt, work.dist, {}, pert, 0, n, stored, w, nullptr,
                                    nullptr);
  BlockWork drawn;
  drawn.dist = work.dist;
  drawn.perturb = true;
  count_rng(n, drawn);
}

void ParamStore::apply_fp32_work(int id, const BlockWork& work, float* w, float* plus, float* minus) {
  const int64_t n = arch_.tensors()[static_cast<std::size_t>(id)].numel();
  const kernels::ZoUpdate upd = update_of(id, work);
  const kernels::ZoPerturb pert = perturb_of(work);
  if (upd.active || pert.active)
    kernels::zo_update_perturb(static_cast<uint32_t>(id), work.dist, upd, pert, 0, n, w, plus, minus);
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
}

void RamStore::acquire(int block, const BlockWork& work) {
  const auto& table = arch_.tensors();
  if (work.perturb) {
    blocks::ensure(slot_plus_, block_numel(block));
    if (!work.one_sided) blocks::ensure(slot_minus_, block_numel(block));
  }
  int64_t offset = 0;
  for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
    const int64_t n = table[static_cast<std::size_t>(id)].numel();
    float* w = weights_[static_cast<std::size_t>(id)].data();
    float* plus = work.perturb ? slot_plus_.data() + offset : nullptr;
    float* minus = work.perturb && !work.one_sided ? slot_minus_.data() + offset : nullptr;
    apply_fp32_work(id, work, w, plus, minus);
    if (work.update || work.perturb) count_pass(n, work, sizeof(float));
    offset += n;
  }
}

void RamStore::stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) {
  const auto [rows, cols, cap] = stream_shape(id, chunk_rows);
  const kernels::ZoUpdate upd = update_of(id, work);
  const kernels::ZoPerturb pert = perturb_of(work);
  float* cp = work.perturb ? blocks::ensure(chunk_plus_, cap) : nullptr;
  float* cm = work.perturb && !work.one_sided ? blocks::ensure(chunk_minus_, cap) : nullptr;
  float* w0 = weights_[static_cast<std::size_t>(id)].data();
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, rows - r0), n = nr * cols;
    float* w = w0 + r0 * cols;
    if (upd.active || pert.active)
      kernels::zo_update_perturb(static_cast<uint32_t>(id), work.dist, upd, pert, r0 * cols, n, w, cp, cm);
    if (work.update || work.perturb) count_pass(n, work, sizeof(float));
    if (fn) fn(RowChunk{r0, nr, cols, w, cp ? cp : w, cm ? cm : w});
  }
}

void RamStore::release(int block) {
  // Working copies of a released block must not be used again; point back at storage.
  for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
    plus_[static_cast<std::size_t>(id)] = minus_[static_cast<std::size_t>(id)] = weights_[static_cast<std::size_t>(id)].data();
  }
}

void RamStore::read_range(int id, int64_t first, int64_t count, float* out) const {
  const float* w = weights_[static_cast<std::size_t>(id)].data() + first;
  std::copy(w, w + count, out);
}

}  // namespace zotune
