#include "store/node_shared_store.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include <sched.h>

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
// Claimed passes: a rank takes a unit's elements at most this many at a time
// (a multiple of kShareAlign; about 40 us of zo_apply per claim), and a unit
// is cut into at least kClaimsPerRank claims per rank of the node.
constexpr int64_t kClaim = int64_t{1} << 15;
constexpr int64_t kClaimsPerRank = 8;
// Posted works kept per rank (a rank checks the others' posts of the unit
// before its own when it finds them still there).
constexpr int kPostDepth = 4;

using Atomic = std::atomic_ref<int64_t>;

// Waits until `ready()`: spins first (the other rank of a node is usually a
// few microseconds away), then yields the core (oversubscribed nodes), then
// sleeps in short naps.
template <class Ready>
void wait_until(Ready ready) {
  for (int i = 0; !ready(); ++i) {
    if (i < 4000) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else if (i < 4100) {
      sched_yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
}

}  // namespace

// A rank's posted work (node_pass): what decides whether the node's ranks may
// share the unit's working copies, the copies it wants, and the unit, to catch
// calls out of step.
struct NodeSharedStore::Posted {
  int64_t unit;  // which unit (-1 while being written): a seqlock for readers that do not wait
  uint64_t seed;
  int64_t first, n;
  uint32_t eps_bits;
  int32_t first_id;
  uint32_t wanted;
  uint8_t update, perturb, one_sided, dist, copies;
  uint8_t pad[64 - 4 * 8 - 3 * 4 - 5];

  bool same_copies(const Posted& o) const {
    return copies && o.copies && perturb == o.perturb && one_sided == o.one_sided && dist == o.dist &&
           seed == o.seed && eps_bits == o.eps_bits;
  }
};

NodeSharedStore::Posted& NodeSharedStore::post(int node_rank, int64_t unit) const {
  return posted_[static_cast<std::size_t>(node_rank) * kPostDepth + static_cast<std::size_t>(unit % kPostDepth)];
}

NodeSharedStore::Region NodeSharedStore::region(const Architecture& arch, DType storage, int world) {
  const auto& table = arch.tensors();
  const std::size_t bytes = dtype_size(storage);
  auto lines = [](std::size_t n) { return (n + 63) / 64 * 64; };
  auto streamed = [&](int id) { return id == arch.token_embedding_id() || id == arch.head_weight_id(); };
  Region r;
  r.offset.resize(table.size());
  std::vector<int64_t> block_numel(static_cast<std::size_t>(arch.num_blocks()), 0);
  for (std::size_t i = 0; i < table.size(); ++i) {
    r.offset[i] = r.total;
    r.total += lines(static_cast<std::size_t>(table[i].numel()) * bytes);
    if (streamed(static_cast<int>(i))) {  // the largest chunk stream_chunk_rows cuts
      const int64_t rows = table[i].shape[0], cols = table[i].numel() / rows;
      r.chunk_cap = std::max(r.chunk_cap, stream_chunk_rows(cols, rows) * cols);
    } else {
      block_numel[static_cast<std::size_t>(table[i].block)] += table[i].numel();
    }
  }
  for (int64_t n : block_numel) r.block_cap = std::max(r.block_cap, n);
  const auto W = static_cast<std::size_t>(world);
  r.posted_at = r.total;
  r.sync_at = r.posted_at + sizeof(Posted) * kPostDepth * W;
  r.block_at = r.sync_at + 64 * (W + 2);
  r.block_slot = lines(2 * static_cast<std::size_t>(r.block_cap) * sizeof(float));
  r.chunk_at = r.block_at + kBlockSlots * r.block_slot;
  r.chunk_slot = lines(3 * static_cast<std::size_t>(r.chunk_cap) * sizeof(float));
  r.total = r.chunk_at + kChunkSlots * r.chunk_slot;
  return r;
}

std::size_t NodeSharedStore::region_bytes(const Architecture& arch, DType storage, int world) {
  return region(arch, storage, world).total;
}

NodeSharedStore::NodeSharedStore(const Architecture& arch, const Checkpoint& ckpt, DType storage, Comm& comm)
    : ParamStore(arch, storage, "node-shared store") {
  const auto& table = arch.tensors();
  const Region r = region(arch, storage, comm.world());
  offset_ = r.offset;
  block_cap_ = r.block_cap;
  chunk_cap_ = r.chunk_cap;
  share_ = comm.share_node(r.total);
  base_ = static_cast<unsigned char*>(share_->data());
  posted_ = reinterpret_cast<Posted*>(base_ + r.posted_at);
  sync_ = reinterpret_cast<int64_t*>(base_ + r.sync_at);
  for (std::size_t k = 0; k < block_slot_.size(); ++k)
    block_slot_[k] = reinterpret_cast<float*>(base_ + r.block_at + k * r.block_slot);
  for (std::size_t k = 0; k < chunk_slot_.size(); ++k)
    chunk_slot_[k] = reinterpret_cast<float*>(base_ + r.chunk_at + k * r.chunk_slot);
  block_unit_at_.fill(-1);
  chunk_unit_at_.fill(-1);
  // The claim counters start at zero; the barrier at the end publishes them.
  for (int k = 0; k < kPostDepth; ++k) {
    post(share_->node_rank(), k) = Posted{};
    post(share_->node_rank(), k).unit = -1;
  }
  Atomic(entered(share_->node_rank())).store(0);
  if (share_->node_rank() == 0) {
    Atomic(claimed()).store(0);
    Atomic(finished()).store(0);
  }
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

NodeSharedStore::UnitCopies NodeSharedStore::block_slots(const BlockWork& work) const {
  // Several directions: each rank makes its later pairs itself (pair_copy), so
  // the block's copies are private.
  if (!work.perturb || work.directions() > 1) return {};
  // fp32 one-sided: copy 1 is the stored θ itself; 16-bit: θ decoded into it.
  float* c = block_slot_[static_cast<std::size_t>(block_units_ % kBlockSlots)];
  return {c, work.one_sided && !codec_.lowbit() ? nullptr : c + block_cap_, nullptr};
}

NodeSharedStore::UnitCopies NodeSharedStore::chunk_slots(const BlockWork& work, int64_t n) const {
  if (!work.perturb || n > chunk_cap_) return {};
  float* c = chunk_slot_[static_cast<std::size_t>(chunk_units_ % kChunkSlots)];
  return {c, work.one_sided ? nullptr : c + chunk_cap_, codec_.lowbit() ? c + 2 * chunk_cap_ : nullptr};
}

void NodeSharedStore::apply_range(const BlockWork& w, const std::vector<Piece>& pieces, int64_t lo, int64_t hi,
                                  const UnitCopies& copies, bool shared) {
  if (!w.update && !w.perturb) return;
  int64_t at = 0;
  for (const Piece& p : pieces) {
    const int64_t a = std::max(lo, at), b = std::min(hi, at + p.n);
    if (a < b) {
      const int64_t first = p.first + (a - at);
      const ThetaSlice s = slice(p.id, stored(p.id) + static_cast<std::size_t>(first) * codec_.bytes(), first, b - a);
      auto out = [&](float* c) { return shared && c ? c + a : nullptr; };
      count_draws(zo_apply(w, s, out(copies.plus), out(copies.minus), out(copies.theta)));
      count_bytes(b - a, w);
    }
    at += p.n;
  }
}

void NodeSharedStore::check_posts(int64_t unit, bool claimed) const {
  const Posted& mine = post(share_->node_rank(), unit);
  for (int r = 0; r < share_->node_size(); ++r) {
    Posted o;
    if (claimed) {
      // Without a barrier rank r may not have posted this unit yet, or be far
      // enough ahead to write the line again: check what is there, whole.
      Posted& line = post(r, unit);
      if (Atomic(line.unit).load(std::memory_order_acquire) != unit) continue;
      std::memcpy(&o, &line, sizeof o);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (Atomic(line.unit).load(std::memory_order_relaxed) != unit) continue;
    } else {
      o = post(r, unit);
    }
    check(o.first_id == mine.first_id && o.first == mine.first && o.n == mine.n && o.update == mine.update,
          "node-shared store: rank ", share_->node_rank(), " of the node is at tensor ", mine.first_id, " element ",
          mine.first, ", node rank ", r, " at tensor ", o.first_id, " element ", o.first,
          " (calls that update or perturb are collective over the node's ranks)");
    // Claimed passes share the copies by the rule learned (node_pass): every
    // rank must still perturb alike.
    check(!claimed || (o.copies == mine.copies && o.perturb == mine.perturb &&
                       (!mine.copies || (mine.same_copies(o) && (o.wanted & ~node_wanted_) == 0))),
          "node-shared store: node rank ", r, " perturbed tensor ", o.first_id, " element ", o.first,
          " unlike rank ", share_->node_rank(), " of the node (seed, eps or copies differ) after the ranks had agreed");
  }
}

bool NodeSharedStore::node_pass(const BlockWork& work, const std::vector<Piece>& pieces, const UnitCopies& copies,
                                int64_t free_after, unsigned& made) {
  static_assert(sizeof(Posted) == 64, "one cache line per rank");
  static_assert(Atomic::is_always_lock_free, "the claim counters are shared between processes");
  int64_t total = 0;
  for (const Piece& p : pieces) total += p.n;
  const int me = share_->node_rank();
  const int64_t unit = units_++;
  Posted& mine = post(me, unit);
  Atomic(mine.unit).store(-1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  mine.seed = work.seed;
  std::memcpy(&mine.eps_bits, &work.eps, sizeof mine.eps_bits);
  mine.first_id = pieces.empty() ? -1 : pieces[0].id;
  mine.first = pieces.empty() ? 0 : pieces[0].first;
  mine.n = total;
  mine.update = work.update ? 1 : 0;
  mine.perturb = work.perturb ? 1 : 0;
  mine.one_sided = work.one_sided ? 1 : 0;
  mine.dist = static_cast<uint8_t>(work.dist);
  mine.wanted = work.wanted;
  mine.copies = copies.plus ? 1 : 0;
  Atomic(mine.unit).store(unit, std::memory_order_release);
  // Entered `unit`: done reading the copies of every chunk before it and of
  // every block before the last, and posted.
  Atomic(entered(me)).store(unit + 1, std::memory_order_release);
  BlockWork w = work;
  if (mode_ == Mode::Claimed) {
    // No barrier: once every rank has entered unit `free_after`, nobody reads
    // the slots this one writes (a unit that writes none, or θ alone, waits
    // for nobody), and the ranks claim its elements. A rank that finished its
    // forward first does more of the pass instead of waiting for the other;
    // the result does not depend on who does what (z is a function of the
    // element).
    const bool shared = work.perturb && copies.plus;
    if (shared && free_after >= 0)
      wait_until([&] {
        for (int r = 0; r < share_->node_size(); ++r)
          if (Atomic(entered(r)).load(std::memory_order_acquire) <= free_after) return false;
        return true;
      });
    if (unit > claimed_from_) check_posts(unit - 1, true);
    made = shared ? node_wanted_ | work.wanted : 0;
    w.wanted = made;
    if (!shared) w.perturb = false;
    const int64_t claim =
        std::clamp(total / (kClaimsPerRank * share_->node_size()) / kShareAlign * kShareAlign, kShareAlign, kClaim);
    const int64_t end = claim_base_ + (total + claim - 1) / claim;
    Atomic next(claimed()), done(finished());
    for (int64_t c = next.load(std::memory_order_acquire); c < end;) {
      if (next.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        const int64_t lo = (c - claim_base_) * claim;
        apply_range(w, pieces, lo, std::min(total, lo + claim), copies, shared);
        done.fetch_add(1, std::memory_order_release);
        c = next.load(std::memory_order_acquire);
      }
    }
    wait_until([&] { return done.load(std::memory_order_acquire) >= end; });
    claim_base_ = end;
    return shared;
  }
  share_->barrier();  // nobody still reads the unit or the slots; every rank's work posted
  check_posts(unit, false);
  bool same = true, offered = true;
  made = 0;  // every copy some rank of the node wants
  for (int r = 0; r < share_->node_size(); ++r) {
    const Posted& o = post(r, unit);
    same = same && mine.same_copies(o);
    offered = offered && o.perturb && o.copies;
    made |= o.wanted;
  }
  w.wanted = made;
  if (!same) w.perturb = false;
  const auto [lo, hi] = my_share(total);
  apply_range(w, pieces, lo, hi, copies, same);
  share_->barrier();  // every share written
  // Every rank read the same table, so all change mode at the same unit: the
  // first perturbing unit whose copies every rank could share decides. Alike
  // (data and perturbation parallelism): the later units claim; unlike (ranks
  // of different direction groups): barriers and private copies stay.
  if (mode_ == Mode::Learning && offered) {
    mode_ = same ? Mode::Claimed : Mode::Barriers;
    node_wanted_ = made;
    claimed_from_ = units_;
  }
  return same;
}

void NodeSharedStore::begin_block(int block, const BlockWork& work) {
  const auto& ids = block_tensors_[static_cast<std::size_t>(block)];
  work_ = work;
  work_.update.reset();
  made_ = 0;
  shared_copies_ = false;
  const bool lean = codec_.lowbit();
  if (work.update || work.perturb) {
    pieces_.clear();
    for (int id : ids) pieces_.push_back({id, 0, arch_.tensors()[static_cast<std::size_t>(id)].numel()});
    const UnitCopies c = block_slots(work);
    unsigned made = 0;
    // The slot was last read in block (block_units_ - 2)'s session, which
    // ended before its rank entered the next block's pass.
    const auto at = static_cast<std::size_t>(block_units_ % kBlockSlots);
    const int64_t free_after = block_unit_at_[(at + kBlockSlots - 1) % kBlockSlots];
    block_unit_at_[at] = units_;
    shared_copies_ = node_pass(work, pieces_, c, free_after, made);
    ++block_units_;
    if (shared_copies_) {
      int64_t offset = 0;
      for (int id : ids) {
        const auto* theta = reinterpret_cast<const float*>(stored(id));  // fp32 one-sided copy 1
        plus_[static_cast<std::size_t>(id)] = made & 1u ? c.plus + offset : nullptr;
        minus_[static_cast<std::size_t>(id)] = c.minus ? (made & 2u ? c.minus + offset : nullptr) : theta;
        offset += arch_.tensors()[static_cast<std::size_t>(id)].numel();
      }
      return;
    }
  }
  // This rank's own copies of the whole unit (from the stored values, updated
  // above); 16-bit: one lean copy, the first the work wants.
  made_ = lean && !work.wants(0) ? 1 : 0;
  float* plus = lean || work.makes(0) ? blocks::ensure(slot_plus_, block_numel(block)) : nullptr;
  float* minus = !lean && work.makes(1) ? blocks::ensure(slot_minus_, block_numel(block)) : nullptr;
  int64_t offset = 0;
  for (int id : ids) {
    const ThetaSlice s = slice(id, stored(id));
    float* p = plus ? plus + offset : nullptr;
    float* m = minus ? minus + offset : nullptr;
    if (lean) {
      count_draws(zo_apply(work_, s, made_ == 0 ? p : nullptr, made_ == 1 ? p : nullptr, nullptr));
      count_bytes(s.n, work_);
      plus_[static_cast<std::size_t>(id)] = p;
      minus_[static_cast<std::size_t>(id)] = nullptr;
    } else {
      if (p || m) {
        count_draws(zo_apply(work_, s, p, m, nullptr));
        count_bytes(s.n, work_);
      }
      const auto* theta = reinterpret_cast<const float*>(stored(id));
      plus_[static_cast<std::size_t>(id)] = p ? p : work.wants(0) ? theta : nullptr;
      minus_[static_cast<std::size_t>(id)] = m ? m : work.wants(1) || work.one_sided ? theta : nullptr;
    }
    offset += s.n;
  }
}

ParamPtrs NodeSharedStore::working_copy(int block, int k) {
  if (shared_copies_) return k % 2 == 0 ? plus_ : minus_;  // one direction (block_slots)
  const auto at = [&](int id) -> void* { return stored(id); };
  if (!codec_.lowbit()) return pair_copy(block, k, made_, work_, at);
  return lean_copy(block, k, made_, work_, plus_, at, true);
}

void NodeSharedStore::end_block(int block) {
  shared_copies_ = false;
  for (int id : block_tensors_[static_cast<std::size_t>(block)]) {
    const auto* theta = codec_.lowbit() ? nullptr : reinterpret_cast<const float*>(stored(id));
    plus_[static_cast<std::size_t>(id)] = minus_[static_cast<std::size_t>(id)] = theta;
  }
}

void NodeSharedStore::stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) {
  const auto [rows, cols, cap] = stream_shape(id, chunk_rows);
  const bool lean = codec_.lowbit();
  BlockWork copies = work;
  copies.update.reset();
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, rows - r0), n = nr * cols, b = r0 * cols;
    unsigned char* at = stored(id) + static_cast<std::size_t>(b) * codec_.bytes();
    const float* stored_theta = lean ? nullptr : reinterpret_cast<const float*>(at);
    if (work.update || work.perturb) {
      pieces_.assign(1, Piece{id, b, n});
      unsigned made = 0;
      const UnitCopies shared = chunk_slots(work, cap);
      // The slot was last read by the chunk kChunkSlots chunks ago, before
      // its rank entered the next pass.
      int64_t& last = chunk_unit_at_[static_cast<std::size_t>(chunk_units_ % kChunkSlots)];
      const int64_t free_after = last < 0 ? -1 : last + 1;
      last = units_;
      const bool ok = node_pass(work, pieces_, shared, free_after, made);
      ++chunk_units_;
      if (ok) {
        const float* theta = shared.theta ? shared.theta : stored_theta;
        if (fn)
          fn(row_chunk(work, r0, nr, cols, theta, made & 1u ? shared.plus : nullptr,
                       made & 2u ? shared.minus : nullptr));
        continue;
      }
    }
    // This rank's own copies of the chunk (from the stored values, updated above).
    float* ct = lean ? blocks::ensure(chunk_theta_, cap) : nullptr;
    float* cp = work.makes(0) ? blocks::ensure(chunk_plus_, cap) : nullptr;
    float* cm = work.makes(1) ? blocks::ensure(chunk_minus_, cap) : nullptr;
    if (ct || cp || cm) {
      count_draws(zo_apply(copies, slice(id, at, b, n), cp, cm, ct));
      count_bytes(n, copies);
    }
    if (fn) fn(row_chunk(work, r0, nr, cols, lean ? ct : stored_theta, cp, cm));
  }
}

void NodeSharedStore::read_range(int id, int64_t first, int64_t count, float* out) const {
  codec_.decode(stored(id) + static_cast<std::size_t>(first) * codec_.bytes(), count, out);
}

}  // namespace zotune
