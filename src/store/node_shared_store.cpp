#include "store/node_shared_store.h"

#include <algorithm>

#include "base/error.h"
#include "dist/comm.h"
#include "io/safetensors.h"
#include "model/blocks.h"
#include "model/weights.h"

namespace zotune {

namespace {

// Elements converted between two page drops while loading (as LowBitRamStore).
constexpr int64_t kLoadChunk = int64_t{1} << 20;
// Shares of a unit start on multiples of this many elements (whole cache lines).
constexpr int64_t kShareAlign = 64;

}  // namespace

NodeSharedStore::NodeSharedStore(const Architecture& arch, const Checkpoint& ckpt, DType storage, Comm& comm)
    : ParamStore(arch, storage, "node-shared store") {
  const auto& table = arch.tensors();
  offset_.resize(table.size());
  std::size_t total = 0;
  for (std::size_t i = 0; i < table.size(); ++i) {
    offset_[i] = total;
    total += (static_cast<std::size_t>(table[i].numel()) * codec_.bytes() + 63) / 64 * 64;
  }
  share_ = comm.share_node(total);
  base_ = static_cast<unsigned char*>(share_->data());
  // Every rank of the node converts its share of each tensor.
  AlignedBuffer<float> tmp;
  for (std::size_t i = 0; i < table.size(); ++i) {
    const TensorView v = checked_view(arch, ckpt, table[i]);
    const auto [lo, hi] = my_share(v.numel());
    for (int64_t b = lo; b < hi; b += kLoadChunk) {
      const int64_t m = std::min(kLoadChunk, hi - b);
      codec_.encode(v, b, m, stored(static_cast<int>(i)) + static_cast<std::size_t>(b) * codec_.bytes(), tmp);
    }
    drop_mapped_pages(v.data, v.nbytes());
    // Outside a block session the fp32 copies are the stored values (as RamStore).
    if (!codec_.lowbit()) plus_[i] = minus_[i] = reinterpret_cast<const float*>(stored(static_cast<int>(i)));
  }
  share_->barrier();
}

std::pair<int64_t, int64_t> NodeSharedStore::my_share(int64_t n) const {
  const int r = share_->node_rank(), S = share_->node_size();
  auto cut = [&](int k) { return k >= S ? n : n * k / S / kShareAlign * kShareAlign; };
  return {cut(r), cut(r + 1)};
}

void NodeSharedStore::update_unit(const BlockWork& work, const std::vector<Piece>& pieces) {
  BlockWork upd = work;
  upd.perturb = false;
  int64_t total = 0;
  for (const Piece& p : pieces) total += p.n;
  const auto [lo, hi] = my_share(total);
  share_->barrier();  // nobody still reads the unit
  int64_t at = 0;
  for (const Piece& p : pieces) {
    const int64_t a = std::max(lo, at), b = std::min(hi, at + p.n);
    if (a < b) {
      const int64_t first = p.first + (a - at);
      const ThetaSlice s = slice(p.id, stored(p.id) + static_cast<std::size_t>(first) * codec_.bytes(), first, b - a);
      count_draws(zo_apply(upd, s, nullptr, nullptr, nullptr));
      count_bytes(b - a, upd);
    }
    at += p.n;
  }
  share_->barrier();  // every share written
}

void NodeSharedStore::begin_block(int block, const BlockWork& work) {
  const auto& ids = block_tensors_[static_cast<std::size_t>(block)];
  if (work.update) {
    pieces_.clear();
    for (int id : ids) pieces_.push_back({id, 0, arch_.tensors()[static_cast<std::size_t>(id)].numel()});
    update_unit(work, pieces_);
  }
  work_ = work;
  work_.update.reset();
  made_ = 0;
  const bool lean = codec_.lowbit();
  float* plus = lean || work.perturb ? blocks::ensure(slot_plus_, block_numel(block)) : nullptr;
  float* minus = !lean && work.perturb && !work.one_sided ? blocks::ensure(slot_minus_, block_numel(block)) : nullptr;
  int64_t offset = 0;
  for (int id : ids) {
    const ThetaSlice s = slice(id, stored(id));
    float* p = plus ? plus + offset : nullptr;
    float* m = minus ? minus + offset : nullptr;
    if (p) {
      count_draws(zo_apply(work_, s, p, m, nullptr));
      count_bytes(s.n, work_);
    }
    const auto* theta = reinterpret_cast<const float*>(stored(id));  // fp32 only
    plus_[static_cast<std::size_t>(id)] = p ? p : theta;
    minus_[static_cast<std::size_t>(id)] = lean ? nullptr : m ? m : theta;
    offset += s.n;
  }
}

ParamPtrs NodeSharedStore::working_copy(int block, int k) {
  if (!codec_.lowbit()) return pair_copy(block, k, made_, work_, [&](int id) -> void* { return stored(id); });
  return lean_copy(block, k, made_, work_, plus_, [&](int id) -> void* { return stored(id); }, true);
}

void NodeSharedStore::end_block(int block) {
  for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
    const auto* theta = codec_.lowbit() ? nullptr : reinterpret_cast<const float*>(stored(id));
    plus_[static_cast<std::size_t>(id)] = minus_[static_cast<std::size_t>(id)] = theta;
  }
}

void NodeSharedStore::stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) {
  const auto [rows, cols, cap] = stream_shape(id, chunk_rows);
  const bool lean = codec_.lowbit();
  float* ct = lean ? blocks::ensure(chunk_theta_, cap) : nullptr;
  float* cp = work.perturb ? blocks::ensure(chunk_plus_, cap) : nullptr;
  float* cm = work.perturb && !work.one_sided ? blocks::ensure(chunk_minus_, cap) : nullptr;
  BlockWork copies = work;
  copies.update.reset();
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, rows - r0), n = nr * cols, b = r0 * cols;
    if (work.update) {
      pieces_.assign(1, Piece{id, b, n});
      update_unit(work, pieces_);
    }
    unsigned char* at = stored(id) + static_cast<std::size_t>(b) * codec_.bytes();
    if (ct || cp) {
      count_draws(zo_apply(copies, slice(id, at, b, n), cp, cm, ct));
      count_bytes(n, copies);
    }
    const float* theta = lean ? ct : reinterpret_cast<const float*>(at);
    if (fn) fn(RowChunk{r0, nr, cols, theta, cp ? cp : theta, cm ? cm : theta});
  }
}

void NodeSharedStore::read_range(int id, int64_t first, int64_t count, float* out) const {
  codec_.decode(stored(id) + static_cast<std::size_t>(first) * codec_.bytes(), count, out);
}

}  // namespace zotune
