// The disk tier as a ParamStore: construction, staging with the I/O thread,
// the lean working copies, and crash catch-up (file format: disk_format.cpp;
// file I/O: disk_io.cpp).
#include "store/disk_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "base/error.h"
#include "base/fs.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/blocks.h"
#include "model/weights.h"
#include "store/disk_files.h"
#include "zo/replay.h"

namespace zotune {

using namespace disk;  // NOLINT: the tier's private helpers (disk_files.h)

// ---- construction

DiskStore::DiskStore(const Architecture& arch, DiskStoreOptions opt, bool)
    : ParamStore(arch, opt.storage_dtype, "--offload disk"), opt_(std::move(opt)), elem_(codec_.bytes()) {
  check(opt_.resident_blocks >= 1, "--resident-blocks must be at least 1 (got ", opt_.resident_blocks, ")");
  check(!opt_.work_dir.empty(), "--offload disk needs a work directory");
  init_layout();
}

DiskStore::DiskStore(const Architecture& arch, const Checkpoint& ckpt, DiskStoreOptions opt)
    : DiskStore(arch, std::move(opt), true) {
  std::error_code ec;
  fs::create_directories(opt_.work_dir, ec);
  check(!ec && fs::is_directory(opt_.work_dir), opt_.work_dir.string(),
        ": cannot create the disk tier's work directory: ", ec ? ec.message() : "not a directory");
  // Without a manifest the directory is not a working copy: a crash while
  // streaming the model in leaves nothing that looks complete.
  fs::remove(opt_.work_dir / kManifest, ec);
  const auto& table = arch.tensors();
  Stage& s = *stages_[0];
  AlignedBuffer<float> tmp;
  for (int b = 0; b < arch.num_blocks(); ++b) {
    uint8_t* buf = s.buf.ensure(unit_file_bytes(b));
    uint8_t* payload = buf + kPage;
    for (int id : block_tensors_[static_cast<std::size_t>(b)]) {
      const auto& spec = table[static_cast<std::size_t>(id)];
      TensorView v = checked_view(arch, ckpt, spec);
      codec_.encode(v, 0, v.numel(),
                         payload + static_cast<uint64_t>(tensor_offset_[static_cast<std::size_t>(id)]) * elem_, tmp);
      drop_mapped_pages(v.data, v.nbytes());
    }
    const uint64_t used = static_cast<uint64_t>(block_numel(b)) * elem_;
    std::memset(payload + used, 0, unit_file_bytes(b) - kPage - used);
    s.block = b;
    write_block(s, opt_.initial_updates);
  }
  s.block = -1;
  for (int id : rows_ids_) create_rows_file(id, ckpt);
  write_manifest();
  fold_counters();
  if (opt_.overlap) io_ = std::thread([this] { io_loop(); });
}


void DiskStore::init_layout() {
  const auto& table = arch_.tensors();
  const int N = arch_.num_blocks();
  tensor_offset_.assign(table.size(), 0);
  for (int b = 0; b < N; ++b) {
    int64_t off = 0;
    for (int id : block_tensors_[static_cast<std::size_t>(b)]) {
      tensor_offset_[static_cast<std::size_t>(id)] = off;
      off += table[static_cast<std::size_t>(id)].numel();
    }
  }
  for (std::size_t id = 0; id < table.size(); ++id)
    if (streamed(static_cast<int>(id))) rows_ids_.push_back(static_cast<int>(id));
  updates_.assign(static_cast<std::size_t>(N) + rows_ids_.size(), opt_.initial_updates);
  for (std::size_t i = 0; i < rows_ids_.size(); ++i) {
    rows_writes_.push_back(std::make_unique<RowsWrite>());
    rows_writes_.back()->unit = N + static_cast<int>(i);
  }
  held_.assign(static_cast<std::size_t>(N), nullptr);
  slot_of_.assign(static_cast<std::size_t>(N), nullptr);
  for (int i = 0; i < opt_.resident_blocks + 2; ++i) stages_.push_back(std::make_unique<Stage>());
  ring_.resize(static_cast<std::size_t>(opt_.resident_blocks));
  carry_.assign(kPage, 0);
}

DiskStore::~DiskStore() {
  if (io_.joinable()) {
    {
      std::unique_lock lk(mu_);
      drain(lk);
      stop_ = true;
    }
    cv_.notify_all();
    io_.join();
  }
  // A rows file whose stream failed before its temp file was handed on.
  for (auto& w : rows_writes_)
    if (w->fd >= 0) ::close(std::exchange(w->fd, -1));
}

// ---- staging (mu_ held unless noted)

DiskStore::Stage* DiskStore::take_free_stage(bool may_evict) {
  for (auto& s : stages_)
    if (s->state == StageState::Free) return s.get();
  if (may_evict)
    for (auto& s : stages_)
      if (s->state == StageState::Ready) {
        s->state = StageState::Free;
        s->error = nullptr;
        return s.get();
      }
  return nullptr;
}

void DiskStore::schedule_read(int block) {
  for (auto& s : stages_)
    if (s->block == block && s->state != StageState::Free && s->state != StageState::Writing) return;
  Stage* s = take_free_stage(false);
  if (!s) return;
  s->block = block;
  s->updates = updates_[static_cast<std::size_t>(block)];
  s->state = StageState::Reading;
  s->error = nullptr;
  queue_.push_back({TaskKind::ReadBlock, s, nullptr, nullptr});
  cv_.notify_all();
}

DiskStore::Stage& DiskStore::stage_for_acquire(std::unique_lock<std::mutex>& lk, int block) {
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    rethrow_io_error();
    Stage* found = nullptr;
    for (auto& s : stages_)
      if (s->block == block && (s->state == StageState::Reading || s->state == StageState::Ready)) found = s.get();
    if (found && found->state == StageState::Ready) {
      if (found->error) {
        auto e = std::exchange(found->error, nullptr);
        found->state = StageState::Free;
        std::rethrow_exception(e);
      }
      found->state = StageState::InUse;
      counters_.io_wait_seconds += seconds_since(t0);
      return *found;
    }
    if (!found) {
      if (Stage* s = take_free_stage(true)) {
        s->block = block;
        s->updates = updates_[static_cast<std::size_t>(block)];
        s->error = nullptr;
        s->state = StageState::Reading;
        if (opt_.overlap) {
          queue_.push_back({TaskKind::ReadBlock, s, nullptr, nullptr});
          cv_.notify_all();
        } else {
          lk.unlock();
          try {
            read_block(*s);
          } catch (...) {
            lk.lock();
            s->state = StageState::Free;
            throw;
          }
          lk.lock();
          s->state = StageState::Ready;
        }
        continue;
      }
    }
    cv_.wait(lk);
  }
}

void DiskStore::retire(std::unique_lock<std::mutex>& lk, Stage& s) {
  slot_of_[static_cast<std::size_t>(s.block)] = nullptr;
  held_[static_cast<std::size_t>(s.block)] = nullptr;
  s.holds_pointers = false;
  if (!s.dirty) {
    s.state = StageState::Free;
    cv_.notify_all();
    return;
  }
  s.dirty = false;
  s.updates = updates_[static_cast<std::size_t>(s.block)];
  s.state = StageState::Writing;
  if (opt_.overlap) {
    queue_.push_back({TaskKind::WriteBlock, &s, nullptr, nullptr});
    cv_.notify_all();
    return;
  }
  lk.unlock();
  try {
    write_block(s, s.updates);
  } catch (...) {
    lk.lock();
    io_error_ = std::current_exception();
    s.state = StageState::Free;
    throw;
  }
  lk.lock();
  s.state = StageState::Free;
}

void DiskStore::io_loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;
    Task t = queue_.front();
    queue_.pop_front();
    ++busy_;
    lk.unlock();
    std::exception_ptr err;
    try {
      switch (t.kind) {
        case TaskKind::ReadBlock: read_block(*t.stage); break;
        case TaskKind::WriteBlock: write_block(*t.stage, t.stage->updates); break;
        case TaskKind::Io: run_io(*t.io); break;
        case TaskKind::FinishRows: finish_rows(*t.rows); break;
      }
    } catch (...) {
      err = std::current_exception();
    }
    lk.lock();
    --busy_;
    switch (t.kind) {
      case TaskKind::ReadBlock:
        t.stage->error = err;
        t.stage->state = StageState::Ready;
        break;
      case TaskKind::WriteBlock:
        if (err && !io_error_) io_error_ = err;
        t.stage->state = StageState::Free;
        break;
      case TaskKind::Io:
        t.io->error = err;
        t.io->pending = false;
        if (err && t.io->into && !t.io->into->error) t.io->into->error = err;
        break;
      case TaskKind::FinishRows:
        if (err && !io_error_) io_error_ = err;
        t.rows->finishing = false;
        break;
    }
    cv_.notify_all();
  }
}

void DiskStore::drain(std::unique_lock<std::mutex>& lk) const {
  cv_.wait(lk, [&] { return queue_.empty() && busy_ == 0; });
}

void DiskStore::rethrow_io_error() {
  // A lost write-back breaks the run: every later call reports it.
  if (io_error_) std::rethrow_exception(io_error_);
}

void DiskStore::fold_counters() {
  std::lock_guard lk(mu_);
  counters_.param_bytes_read += io_totals_.read - io_folded_.read;
  counters_.param_bytes_written += io_totals_.written - io_folded_.written;
  counters_.io_read_seconds += io_totals_.read_s - io_folded_.read_s;
  counters_.io_write_seconds += io_totals_.write_s - io_folded_.write_s;
  io_folded_ = io_totals_;
}

DiskStore::Slot& DiskStore::slot_for(int block) {
  Slot* s = &ring_[static_cast<std::size_t>(ring_next_)];
  ring_next_ = (ring_next_ + 1) % opt_.resident_blocks;
  blocks::ensure(s->w, block_numel(block));
  slot_of_[static_cast<std::size_t>(block)] = s;
  return *s;
}

// ---- the ParamStore interface

void DiskStore::prefetch(int block) {
  if (!opt_.overlap) return;
  std::lock_guard lk(mu_);
  for (int k = 0; k < opt_.resident_blocks && block + k < arch_.num_blocks(); ++k) schedule_read(block + k);
}

void DiskStore::begin_block(int block, const BlockWork& work) {
  fold_counters();
  const auto bi = static_cast<std::size_t>(block);
  check(block >= 0 && block < arch_.num_blocks() && !held_[bi], "disk tier: block ", block,
        " acquired twice or out of range");
  Stage* st = nullptr;
  {
    std::unique_lock lk(mu_);
    st = &stage_for_acquire(lk, block);
  }
  held_[bi] = st;
  uint8_t* payload = st->buf.data() + kPage;
  const bool lowbit = codec_.lowbit();
  // Lean: one fp32 copy per resident block, copy 0 now and each later one
  // from the staged values, which stay held until the last is made. (fp32
  // one-sided with one direction needs no second pass: its copy 1 is the staged θ.)
  const bool lean = work.perturb && (lowbit || !work.one_sided || work.directions() > 1);
  Slot* slot = lowbit || work.perturb ? &slot_for(block) : nullptr;  // 16-bit: fp32 copies always
  // The one copy is the first the work wants (a minus-only rank: W- at once);
  // the staged values stay until the last wanted copy is made.
  const int first = lean && !work.wants(0) ? 1 : 0;
  lean_last_ = 2 * work.directions() - (work.wants(1) ? 1 : 2);
  for (int id : block_tensors_[bi]) {
    const auto ii = static_cast<std::size_t>(id);
    const int64_t off = tensor_offset_[ii];
    void* stored = payload + static_cast<uint64_t>(off) * elem_;
    float* w = slot ? slot->w.data() + off : nullptr;
    count_draws(zo_apply(work, slice(id, stored), first == 0 ? w : nullptr, first == 1 ? w : nullptr, nullptr));
    const float* theta = lowbit ? w : static_cast<const float*>(stored);
    plus_[ii] = work.perturb ? w : theta;
    minus_[ii] = lean ? nullptr : theta;
  }
  // fp32: the copies point into the stage when unperturbed, copy 1 when
  // one-sided; lean keeps it while a later copy is wanted.
  st->holds_pointers = lean ? lean_last_ > first : !lowbit;
  lean_block_ = lean ? block : -1;
  lean_made_ = first;
  lean_work_ = work;
  if (work.update) {
    ++updates_[bi];
    st->dirty = true;
  }
  std::unique_lock lk(mu_);
  // The working copies are all the forward needs: write back at once and free the buffer.
  if (!st->holds_pointers) {
    Slot* keep = slot_of_[bi];
    retire(lk, *st);
    slot_of_[bi] = keep;
    held_[bi] = nullptr;
  }
  if (block == arch_.num_blocks() - 1 && opt_.overlap) schedule_read(0);  // the next step starts there
}

ParamPtrs DiskStore::working_copy(int block, int k) {
  if (block != lean_block_) return k == 0 ? plus_ : minus_;  // two copies, or θ
  const auto bi = static_cast<std::size_t>(block);
  Stage* st = held_[bi];
  if (k != lean_made_)
    check(st != nullptr && slot_of_[bi] != nullptr, "disk tier: block ", block, " is not resident for working copy ", k);
  uint8_t* payload = st ? st->buf.data() + kPage : nullptr;
  const ParamPtrs p = lean_copy(block, k, lean_made_, lean_work_, plus_, [&](int id) -> void* {
    return payload + static_cast<uint64_t>(tensor_offset_[static_cast<std::size_t>(id)]) * elem_;
  }, false);
  if (lean_made_ == lean_last_ && st) {
    // The staged block is no longer needed: write it back now, as a two-copy tier would have.
    std::unique_lock lk(mu_);
    Slot* keep = slot_of_[bi];
    st->holds_pointers = false;
    retire(lk, *st);
    slot_of_[bi] = keep;
    held_[bi] = nullptr;
  }
  return p;
}

void DiskStore::end_block(int block) {
  if (block == lean_block_) lean_block_ = -1;
  const auto bi = static_cast<std::size_t>(block);
  {
    std::unique_lock lk(mu_);
    if (Stage* st = held_[bi]) retire(lk, *st);
  }
  slot_of_[bi] = nullptr;
  for (int id : block_tensors_[bi]) plus_[static_cast<std::size_t>(id)] = minus_[static_cast<std::size_t>(id)] = nullptr;
  fold_counters();
}

void DiskStore::stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) {
  check(id >= 0 && static_cast<std::size_t>(id) < arch_.tensors().size() && streamed(id),
        "disk tier: tensor ", id, " is not streamed");
  check(chunk_rows > 0, "stream_rows: chunk_rows must be positive");
  fold_counters();
  stream_unit(id, work, chunk_rows, fn);
  fold_counters();
}

void DiskStore::sync() {
  {
    std::unique_lock lk(mu_);
    drain(lk);
    rethrow_io_error();
  }
  Fd d{::open(opt_.work_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  check(d.fd >= 0 && ::fsync(d.fd) == 0, opt_.work_dir.string(), ": fsync of the work directory failed: ",
        errno_text(errno));
  write_manifest();
  fold_counters();
}

void DiskStore::read_range(int id, int64_t first, int64_t count, float* out) const {
  {
    std::unique_lock lk(mu_);
    drain(lk);
  }
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(id)];
  const bool rows = streamed(id);
  const int unit = rows ? rows_unit(id) : spec.block;
  const uint64_t off =
      kPage + static_cast<uint64_t>((rows ? 0 : tensor_offset_[static_cast<std::size_t>(id)]) + first) * elem_;
  const fs::path path = unit_path(unit);
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  check(f.fd >= 0, path.string(), ": cannot open: ", errno_text(errno));
  check(first >= 0 && count >= 0 && first + count <= spec.numel(), "disk tier: elements [", first, ", ",
        first + count, ") of ", spec.name, " are out of range");
  const int64_t n = count;
  if (!codec_.lowbit()) {
    pread_all(f.fd, out, static_cast<uint64_t>(n) * sizeof(float), off, path);
  } else {
    AlignedBuffer<uint16_t> bits(static_cast<std::size_t>(std::min(n, kLoadChunk)));
    for (int64_t b = 0; b < n; b += kLoadChunk) {
      const int64_t m = std::min(kLoadChunk, n - b);
      pread_all(f.fd, bits.data(), static_cast<uint64_t>(m) * elem_, off + static_cast<uint64_t>(b) * elem_, path);
      codec_.decode(bits.data(), m, out + b);
    }
  }
  ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
}

void DiskStore::catch_up(kernels::ZDist dist, float weight_decay, const std::vector<UpdateRecord>& records) {
  sync();
  const auto target = static_cast<int64_t>(records.size());
  for (int u = 0; u < num_units(); ++u)
    check(updates_[static_cast<std::size_t>(u)] <= target, unit_path(u).string(), ": holds ",
          updates_[static_cast<std::size_t>(u)], " updates, more than the ", target, " of the update log");
  replay(*this, dist, weight_decay, records, updates_);
  sync();
}

}  // namespace zotune
