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

RowChunk row_chunk(const BlockWork& work, int64_t row0, int64_t rows, int64_t cols, const float* theta,
                   const float* plus, const float* minus) {
  return {row0, rows, cols, theta, plus ? plus : work.wants(0) ? theta : nullptr,
          minus ? minus : work.wants(1) || work.one_sided ? theta : nullptr};
}

ParamStore::ParamStore(const Architecture& arch, DType storage, const char* who)
    : arch_(arch), codec_(storage, who) {
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
    if (streamed_[i]) {
      streamed_ids_.push_back(static_cast<int>(i));
      continue;
    }
    const auto b = static_cast<std::size_t>(table[i].block);
    block_tensors_[b].push_back(static_cast<int>(i));
    block_numel_[b] += table[i].numel();
  }
}

BlockSession& BlockSession::operator=(BlockSession&& o) noexcept {
  if (this != &o) {
    end_quietly();
    store_ = std::exchange(o.store_, nullptr);
    block_ = o.block_;
  }
  return *this;
}

BlockSession::~BlockSession() { end_quietly(); }

void BlockSession::end_quietly() noexcept {
  try {
    release();
  } catch (...) {
    // The tier keeps a failed write-back and reports it from its next call
    // (DiskStore: every later acquire, stream and sync throw it).
  }
}

ParamPtrs BlockSession::copy(int k) {
  check(store_ != nullptr, "block ", block_, ": the session has ended");
  check(k == 0 || k == 1, "block ", block_, ": no working copy ", k, " (a step has copies 0 and 1)");
  check((store_->wanted_ >> k & 1u) != 0, "block ", block_, ": working copy ", k, " was not asked for (BlockWork::wanted)");
  return store_->working_copy(block_, k);
}

void BlockSession::release() {
  if (ParamStore* s = std::exchange(store_, nullptr)) s->end_block(block_);
}

ThetaSlice ParamStore::slice(int id, void* stored, int64_t begin, int64_t n) const {
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(id)];
  return {id, begin, n < 0 ? spec.numel() : n, spec.decays(), &codec_, stored};
}

ParamStore::StreamShape ParamStore::stream_shape(int id, int64_t chunk_rows) const {
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(id)];
  check(streamed(id), "stream_rows: ", spec.name, " is not a streamed tensor");
  check(chunk_rows > 0, "stream_rows: chunk_rows must be positive (got ", chunk_rows, ")");
  const int64_t rows = spec.shape[0], cols = spec.numel() / rows;
  return {rows, cols, std::min(chunk_rows, rows) * cols};
}

void ParamStore::count_bytes(int64_t n, const BlockWork& work) {
  const auto un = static_cast<uint64_t>(n);
  counters_.param_bytes_read += un * codec_.bytes();
  if (work.update) counters_.param_bytes_written += un * codec_.bytes();
}

ParamPtrs ParamStore::lean_copy(int block, int k, int& made, const BlockWork& work, std::vector<const float*>& ptrs,
                                const std::function<void*(int)>& stored, bool count_read) {
  if (work.perturb && k != made) {  // unperturbed, both copies are θ
    check(k == 1 && made == 0, "block ", block, ": working copy ", k, " was replaced by copy ", made,
          " (a lean tier makes copy 1 from copy 0's memory)");
    for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
      auto* w = const_cast<float*>(ptrs[static_cast<std::size_t>(id)]);
      const ThetaSlice s = slice(id, stored(id));
      count_draws(zo_working_copy(work, s, k, w));
      if (count_read) count_bytes(s.n, BlockWork{});
    }
    made = k;
  }
  return ptrs;
}

RamStore::RamStore(const Architecture& arch, const Checkpoint& ckpt) : ParamStore(arch, DType::F32, "RAM tier") {
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

void RamStore::begin_block(int block, const BlockWork& work) {
  if (work.makes(0)) blocks::ensure(slot_plus_, block_numel(block));
  if (work.makes(1)) blocks::ensure(slot_minus_, block_numel(block));
  int64_t offset = 0;
  for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
    float* w = weights_[static_cast<std::size_t>(id)].data();
    float* plus = work.makes(0) ? slot_plus_.data() + offset : nullptr;
    float* minus = work.makes(1) ? slot_minus_.data() + offset : nullptr;
    const ThetaSlice s = slice(id, w);
    const PassDraws d = zo_apply(work, s, plus, minus, nullptr);
    plus_[static_cast<std::size_t>(id)] = plus ? plus : work.wants(0) ? w : nullptr;
    minus_[static_cast<std::size_t>(id)] = minus ? minus : work.wants(1) || work.one_sided ? w : nullptr;
    if (work.update || work.perturb) {
      count_draws(d);
      count_bytes(s.n, work);
    }
    offset += s.n;
  }
}

ParamPtrs RamStore::working_copy(int /*block*/, int k) { return k == 0 ? plus_ : minus_; }

void RamStore::stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) {
  const auto [rows, cols, cap] = stream_shape(id, chunk_rows);
  float* cp = work.makes(0) ? blocks::ensure(chunk_plus_, cap) : nullptr;
  float* cm = work.makes(1) ? blocks::ensure(chunk_minus_, cap) : nullptr;
  float* w0 = weights_[static_cast<std::size_t>(id)].data();
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, rows - r0), n = nr * cols;
    float* w = w0 + r0 * cols;
    const PassDraws d = zo_apply(work, slice(id, w, r0 * cols, n), cp, cm, nullptr);
    if (work.update || work.perturb) {
      count_draws(d);
      count_bytes(n, work);
    }
    if (fn) fn(row_chunk(work, r0, nr, cols, w, cp, cm));
  }
}

void RamStore::end_block(int block) {
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
