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
    copies_ = o.copies_;
    wanted_ = o.wanted_;
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
  check(k >= 0 && k < copies_, "block ", block_, ": no working copy ", k, " (this session has copies 0..", copies_ - 1,
        ")");
  check(wants(k), "block ", block_, ": working copy ", k, " was not asked for (BlockWork::wanted)");
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
  if (work.perturb && k != made) {  // unperturbed, every copy is θ
    check(k > made, "block ", block, ": working copy ", k, " was replaced by copy ", made,
          " (a lean tier makes each copy in its one copy's memory, in ascending order)");
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

ParamPtrs ParamStore::pair_copy(int block, int k, int& made, const BlockWork& work,
                                const std::function<void*(int)>& stored) {
  if (work.perturb && k / 2 != made) {
    for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
      const auto i = static_cast<std::size_t>(id);
      const ThetaSlice s = slice(id, stored(id));
      float* m = work.one_sided ? nullptr : const_cast<float*>(minus_[i]);
      count_draws(zo_direction(work, s, k / 2, const_cast<float*>(plus_[i]), m));
      count_bytes(s.n, BlockWork{});
    }
    made = k / 2;
  }
  return k % 2 == 0 ? plus_ : minus_;
}

namespace {
// Elements converted between two page drops: bounds what a tensor as large as
// a 150k-token embedding leaves resident from the mapping while loading.
constexpr int64_t kLoadChunk = int64_t{1} << 20;
}  // namespace

RamStore::RamStore(const Architecture& arch, const Checkpoint& ckpt, DType storage)
    : ParamStore(arch, storage, "RAM tier"), lean_(codec_.lowbit()) {
  const auto& table = arch.tensors();
  weights_.resize(table.size());
  AlignedBuffer<float> tmp;
  for (std::size_t i = 0; i < table.size(); ++i) {
    const TensorView v = checked_view(arch, ckpt, table[i]);
    const int64_t n = v.numel();
    weights_[i].reset(static_cast<std::size_t>(n) * codec_.bytes());
    for (int64_t b = 0; b < n; b += kLoadChunk) {
      const int64_t m = std::min(kLoadChunk, n - b);
      codec_.encode(v, b, m, weights_[i].data() + static_cast<std::size_t>(b) * codec_.bytes(), tmp);
      drop_mapped_pages(static_cast<const uint8_t*>(v.data) + static_cast<std::size_t>(b) * dtype_size(v.dtype),
                        static_cast<std::size_t>(m) * dtype_size(v.dtype));
    }
    // Outside a block session the fp32 copies are the stored values.
    if (!lean_) plus_[i] = minus_[i] = reinterpret_cast<const float*>(weights_[i].data());
  }
}

void RamStore::begin_block(int block, const BlockWork& work) {
  work_ = without_update(work);
  // Lean: the one copy is the first the work wants (a minus-only rank: W- at once).
  made_ = lean_ && !work.wants(0) ? 1 : 0;
  const int64_t n = block_numel(block);
  float* plus = lean_ || work.makes(0) ? blocks::ensure(slot_plus_, n) : nullptr;
  float* minus = !lean_ && work.makes(1) ? blocks::ensure(slot_minus_, n) : nullptr;
  int64_t offset = 0;
  for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
    const auto i = static_cast<std::size_t>(id);
    const ThetaSlice s = slice(id, stored(id));
    float* p = plus ? plus + offset : nullptr;
    float* m = minus ? minus + offset : nullptr;
    const PassDraws d = made_ == 1 ? zo_apply(work, s, nullptr, p, nullptr) : zo_apply(work, s, p, m, nullptr);
    const auto* theta = static_cast<const float*>(s.stored);  // fp32 only
    plus_[i] = p ? p : work.wants(0) ? theta : nullptr;
    minus_[i] = lean_ ? nullptr : m ? m : work.wants(1) || work.one_sided ? theta : nullptr;
    if (lean_ || work.update || work.perturb) {
      count_draws(d);
      count_bytes(s.n, work);
    }
    offset += s.n;
  }
}

ParamPtrs RamStore::working_copy(int block, int k) {
  const auto at = [&](int id) -> void* { return stored(id); };
  return lean_ ? lean_copy(block, k, made_, work_, plus_, at, true) : pair_copy(block, k, made_, work_, at);
}

void RamStore::stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) {
  const auto [rows, cols, cap] = stream_shape(id, chunk_rows);
  float* ct = lean_ ? blocks::ensure(chunk_theta_, cap) : nullptr;
  float* cp = work.makes(0) ? blocks::ensure(chunk_plus_, cap) : nullptr;
  float* cm = work.makes(1) ? blocks::ensure(chunk_minus_, cap) : nullptr;
  auto* base = static_cast<unsigned char*>(stored(id));
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, rows - r0), n = nr * cols, b = r0 * cols;
    unsigned char* at = base + static_cast<std::size_t>(b) * codec_.bytes();
    const PassDraws d = zo_apply(work, slice(id, at, b, n), cp, cm, ct);
    if (lean_ || work.update || work.perturb) {
      count_draws(d);
      count_bytes(n, work);
    }
    const float* theta = ct ? ct : reinterpret_cast<const float*>(at);
    if (fn) fn(row_chunk(work, r0, nr, cols, theta, cp, cm));
  }
}

void RamStore::end_block(int block) {
  // Working copies of a released block must not be used again: point back at
  // storage (fp32), or at nothing (16-bit: the slot is reused by the next block).
  for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
    const auto i = static_cast<std::size_t>(id);
    plus_[i] = minus_[i] = lean_ ? nullptr : reinterpret_cast<const float*>(weights_[i].data());
  }
}

void RamStore::read_range(int id, int64_t first, int64_t count, float* out) const {
  codec_.decode(stored_bytes(id) + static_cast<std::size_t>(first) * codec_.bytes(), count, out);
}

}  // namespace zotune
