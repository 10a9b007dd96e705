// The disk tier as a ParamStore (disk_store.h): creating and opening the
// working copy, the ZO pass over staged blocks and streamed chunks, and the
// lean working copies. Files: disk_layout.cpp; I/O: disk_io.cpp, disk_stream.cpp.
#include "store/disk_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "base/error.h"
#include "base/fs.h"
#include "io/safetensors.h"
#include "model/blocks.h"
#include "model/weights.h"
#include "store/disk_catch_up.h"
#include "store/disk_files.h"

namespace zotune {

using namespace disk;  // NOLINT: the tier's private helpers (disk_files.h)

// ---- construction

DiskStore::DiskStore(const Architecture& arch, DiskStoreOptions opt, bool)
    : ParamStore(arch, opt.storage_dtype, "--offload disk"),
      opt_(std::move(opt)),
      layout_(*this, opt_.work_dir),
      updates_(static_cast<std::size_t>(layout_.num_units()), opt_.initial_updates),
      io_(layout_, opt_, counters_) {
  check(opt_.resident_blocks >= 1, "--resident-blocks must be at least 1 (got ", opt_.resident_blocks, ")");
  check(!opt_.work_dir.empty(), "--offload disk needs a work directory");
  held_.assign(static_cast<std::size_t>(arch.num_blocks()), nullptr);
  slot_of_.assign(static_cast<std::size_t>(arch.num_blocks()), nullptr);
  ring_.resize(static_cast<std::size_t>(opt_.resident_blocks));
}

DiskStore::DiskStore(const Architecture& arch, const Checkpoint& ckpt, DiskStoreOptions opt)
    : DiskStore(arch, std::move(opt), true) {
  layout_.prepare_new();
  const auto& table = arch.tensors();
  AlignedBuffer<float> tmp;
  for (int b = 0; b < arch.num_blocks(); ++b)
    io_.create_block_file(b, opt_.initial_updates, [&](uint8_t* payload) {
      for (int id : block_tensors_[static_cast<std::size_t>(b)]) {
        TensorView v = checked_view(arch, ckpt, table[static_cast<std::size_t>(id)]);
        codec_.encode(v, 0, v.numel(), payload + static_cast<uint64_t>(layout_.tensor_offset(id)) * layout_.elem(), tmp);
        drop_mapped_pages(v.data, v.nbytes());
      }
    });
  for (int id : streamed_ids_) {
    const TensorView v = checked_view(arch, ckpt, table[static_cast<std::size_t>(id)]);
    io_.create_rows_file(layout_.rows_unit(id), opt_.initial_updates, [&](int64_t b, int64_t m, uint8_t* out) {
      codec_.encode(v, b, m, out, tmp);
      drop_mapped_pages(static_cast<const uint8_t*>(v.data) + static_cast<std::size_t>(b) * dtype_size(v.dtype),
                        static_cast<std::size_t>(m) * dtype_size(v.dtype));
    });
  }
  layout_.write_manifest(updates_);
  io_.fold();
  io_.start();
}

std::unique_ptr<DiskStore> DiskStore::open_existing(const Architecture& arch, DiskStoreOptions opt) {
  std::unique_ptr<DiskStore> s(new DiskStore(arch, std::move(opt), true));
  s->updates_ = s->layout_.open_existing();
  s->io_.start();
  return s;
}

void DiskStore::catch_up(kernels::ZDist dist, float weight_decay, const std::vector<UpdateRecord>& records) {
  sync();
  disk_catch_up(*this, layout_, updates_, dist, weight_decay, records);
  sync();
}

// ---- blocks

DiskStore::Slot& DiskStore::slot_for(int block) {
  Slot* s = &ring_[static_cast<std::size_t>(ring_next_)];
  ring_next_ = (ring_next_ + 1) % opt_.resident_blocks;
  blocks::ensure(s->w, block_numel(block));
  slot_of_[static_cast<std::size_t>(block)] = s;
  return *s;
}

void DiskStore::retire_stage(int block) {
  const auto bi = static_cast<std::size_t>(block);
  if (DiskIo::Stage* st = std::exchange(held_[bi], nullptr)) io_.release(*st, updates_[bi]);
}

void DiskStore::prefetch(int block) { io_.prefetch(block, updates_); }

void DiskStore::begin_block(int block, const BlockWork& work) {
  io_.fold();
  const auto bi = static_cast<std::size_t>(block);
  check(block >= 0 && block < arch_.num_blocks() && !held_[bi], "disk tier: block ", block,
        " acquired twice or out of range");
  DiskIo::Stage* st = &io_.acquire(block, updates_[bi]);
  held_[bi] = st;
  const bool lowbit = codec_.lowbit();
  // Lean: one fp32 copy per resident block, copy 0 now and each later one
  // from the staged values, which stay held until the last is made. (fp32
  // one-sided with one direction needs no second pass: its copy 1 is the staged θ.)
  const bool lean = work.perturb && (lowbit || !work.one_sided || work.directions() > 1);
  Slot* slot = lowbit || work.perturb ? &slot_for(block) : nullptr;  // 16-bit: fp32 copies always
  // The one copy is the first the work wants (a minus-only rank: W- at once);
  // the staged values stay until the last wanted copy is made.
  const int first = lean && !work.wants(0) ? 1 : 0;
  for (int id : block_tensors_[bi]) {
    const auto ii = static_cast<std::size_t>(id);
    void* theta_stored = stored(*st, id);
    float* w = slot ? slot->w.data() + layout_.tensor_offset(id) : nullptr;
    count_draws(zo_apply(work, slice(id, theta_stored), first == 0 ? w : nullptr, first == 1 ? w : nullptr, nullptr));
    const float* theta = lowbit ? w : static_cast<const float*>(theta_stored);
    plus_[ii] = work.perturb ? w : theta;
    minus_[ii] = lean ? nullptr : theta;
  }
  lean_block_ = lean ? block : -1;
  lean_made_ = first;
  lean_work_ = work;
  if (work.update) {
    ++updates_[bi];
    st->dirty = true;
  }
  // fp32: the copies point into the stage when unperturbed, copy 1 when
  // one-sided; lean keeps it while a later copy is wanted. Otherwise the
  // working copies are all the forward needs: write back at once and free the buffer.
  const bool holds_pointers = lean ? work.last_wanted() > first : !lowbit;
  if (!holds_pointers) retire_stage(block);
  if (block == arch_.num_blocks() - 1) io_.read_ahead(0, updates_[0]);  // the next step starts there
}

ParamPtrs DiskStore::working_copy(int block, int k) {
  if (block != lean_block_) return k == 0 ? plus_ : minus_;  // two copies, or θ
  const auto bi = static_cast<std::size_t>(block);
  DiskIo::Stage* st = held_[bi];
  if (k != lean_made_)
    check(st != nullptr && slot_of_[bi] != nullptr, "disk tier: block ", block, " is not resident for working copy ", k);
  const ParamPtrs p = lean_copy(block, k, lean_made_, lean_work_, plus_, [&](int id) { return stored(*st, id); }, false);
  // The staged block is no longer needed: write it back now, as a two-copy tier would have.
  if (lean_made_ == lean_work_.last_wanted()) retire_stage(block);
  return p;
}

void DiskStore::end_block(int block) {
  if (block == lean_block_) lean_block_ = -1;
  const auto bi = static_cast<std::size_t>(block);
  slot_of_[bi] = nullptr;
  retire_stage(block);
  for (int id : block_tensors_[bi]) plus_[static_cast<std::size_t>(id)] = minus_[static_cast<std::size_t>(id)] = nullptr;
  io_.fold();
}

// ---- streamed tensors

void DiskStore::stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) {
  check(id >= 0 && static_cast<std::size_t>(id) < arch_.tensors().size() && streamed(id),
        "disk tier: tensor ", id, " is not streamed");
  check(chunk_rows > 0, "stream_rows: chunk_rows must be positive");
  io_.fold();
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(id)];
  const int u = layout_.rows_unit(id);
  const int64_t rows = spec.shape[0], cols = spec.numel() / rows;
  const int64_t cap = std::min(chunk_rows, rows) * cols;
  float* ct = codec_.lowbit() ? blocks::ensure(chunk_theta_, cap) : nullptr;
  float* cp = work.makes(0) ? blocks::ensure(chunk_plus_, cap) : nullptr;
  float* cm = work.makes(1) ? blocks::ensure(chunk_minus_, cap) : nullptr;
  io_.stream(u, rows, cols, chunk_rows, updates_[static_cast<std::size_t>(u)], work.update.has_value(),
             [&](uint8_t* data, int64_t r0, int64_t nr) {
               count_draws(zo_apply(work, slice(id, data, r0 * cols, nr * cols), cp, cm, ct));
               const float* theta = ct ? ct : reinterpret_cast<const float*>(data);  // fp32: θ is the staged chunk
               if (fn) fn(row_chunk(work, r0, nr, cols, theta, cp, cm));
             });
  io_.fold();
}

// ---- whole files

void DiskStore::sync() {
  io_.flush();
  layout_.write_manifest(updates_);
  io_.fold();
}

void DiskStore::read_range(int id, int64_t first, int64_t count, float* out) const {
  io_.drain();
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(id)];
  const bool rows = streamed(id);
  const int unit = rows ? layout_.rows_unit(id) : spec.block;
  const uint64_t off = kPage + static_cast<uint64_t>((rows ? 0 : layout_.tensor_offset(id)) + first) * layout_.elem();
  check(first >= 0 && count >= 0 && first + count <= spec.numel(), "disk tier: elements [", first, ", ",
        first + count, ") of ", spec.name, " are out of range");
  const fs::path path = layout_.unit_path(unit);
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  check(f.fd >= 0, path.string(), ": cannot open: ", errno_text(errno));
  const int64_t n = count;
  if (!codec_.lowbit()) {
    pread_all(f.fd, out, static_cast<uint64_t>(n) * sizeof(float), off, path);
  } else {
    AlignedBuffer<uint16_t> bits(static_cast<std::size_t>(std::min(n, kLoadChunk)));
    for (int64_t b = 0; b < n; b += kLoadChunk) {
      const int64_t m = std::min(kLoadChunk, n - b);
      pread_all(f.fd, bits.data(), static_cast<uint64_t>(m) * layout_.elem(), off + static_cast<uint64_t>(b) * layout_.elem(), path);
      codec_.decode(bits.data(), m, out + b);
    }
  }
  ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
}

}  // namespace zotune
