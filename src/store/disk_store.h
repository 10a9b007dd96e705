// The disk tier (`--offload disk`) as a ParamStore: the weights live in a
// working copy on disk and stream through a few buffers in RAM, stored as
// fp32, bf16 or fp16 (`--storage-dtype`). DiskStore composes three pieces and
// owns only the glue between them and the ZO pass:
//   DiskLayout (disk_layout.h)    the file format: units, headers, manifest
//   DiskIo (disk_io.h)            stream I/O: the I/O thread, staged block
//                                 files, chunked rewrite of rows files
//   disk_catch_up (disk_catch_up.h)  bringing lagging units forward after a crash
// What stays here: each unit's update count, creating the files from a
// checkpoint (the codec's encode), running zo_apply (zo/apply.h) over a staged
// block or a streamed chunk, and the working-copy slots.
//
// Every file is replaced atomically, so a crash or kill at any point leaves
// each unit either wholly old or wholly new; its header says how many updates
// it holds, and the trainer brings lagging units forward with catch_up() from
// its update log.
//
// 16-bit storage: the fused pass is kernels::zo_lowbit_update_perturb on the
// stored bits (stochastic rounding keyed by the update's seed), so after the
// same steps the files hold exactly the bits LowBitRamStore holds; working
// copies are fp32 (also for eval, since the model reads fp32).
//
// Memory (nothing scales with the vocabulary; store_footprint.cpp sums it):
//   staging   resident_blocks + 2 buffers of the largest block file (block
//             files hold no streamed tensor, so block 0 is small)
//   working   resident_blocks ring slots of one fp32 copy of a block: the
//             tier is lean (BlockSession), W+ for the plus pass, then W-
//             from the still-staged values for the minus pass
//   streaming 3 chunk I/O buffers of chunk_rows * cols * E + 2 pages, and W+,
//             W- (and, 16-bit, θ) fp32 chunk copies of chunk_rows * cols
// pread, not mmap: mapped pages would count in RSS and a read-ahead copy costs
// the same (measured, see the report).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "base/aligned_buffer.h"
#include "store/disk_io.h"
#include "store/disk_layout.h"
#include "store/param_store.h"

namespace zotune {

struct DiskStoreOptions : DiskIoOptions {
  std::filesystem::path work_dir;
  int64_t initial_updates = 0;  // updates the input checkpoint already holds (its step)
  DType storage_dtype = DType::F32;  // F32, BF16 or F16
};

class DiskStore final : public ParamStore {
 public:
  static constexpr const char* kManifest = DiskLayout::kManifest;

  // A fresh working copy in opt.work_dir from `ckpt`, streamed one block (and
  // one slice of a streamed tensor) at a time; replaces any earlier working copy there.
  DiskStore(const Architecture& arch, const Checkpoint& ckpt, DiskStoreOptions opt);
  // The working copy already in opt.work_dir (resume). Throws naming the file if
  // the manifest is missing, belongs to another model or storage dtype, or a
  // unit's file is missing, truncated or corrupt: every file is read whole and
  // its bytes checked against the checksum in its header.
  static std::unique_ptr<DiskStore> open_existing(const Architecture& arch, DiskStoreOptions opt);
  // True if `work_dir` holds a complete working copy (manifest present).
  static bool has_working_copy(const std::filesystem::path& work_dir) {
    return DiskLayout::has_working_copy(work_dir);
  }

  void prefetch(int block) override;
  void stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) override;
  void read_range(int id, int64_t first, int64_t count, float* out) const override;
  // Waits for every write-back, syncs the directory and rewrites the manifest.
  void sync() override;

  // Units: blocks 0 .. N-1, then one rows file per streamed tensor (ascending id).
  int num_units() const { return layout_.num_units(); }
  std::filesystem::path unit_path(int unit) const { return layout_.unit_path(unit); }
  // Updates applied to each unit (the step it was last updated at).
  const std::vector<int64_t>& unit_updates() const { return updates_; }
  std::filesystem::path block_path(int block) const { return unit_path(block); }
  std::filesystem::path rows_path(int tensor_id) const { return unit_path(layout_.rows_unit(tensor_id)); }
  // After a crash mid-step: brings every unit to records.size() updates
  // (disk_catch_up.h). A unit ahead of the log is an error.
  void catch_up(kernels::ZDist dist, float weight_decay, const std::vector<UpdateRecord>& records);

 private:
  struct Slot {
    AlignedBuffer<float> w;  // the resident block's one fp32 copy (W+, then W-; or θ)
  };

  DiskStore(const Architecture& arch, DiskStoreOptions opt, bool);
  void begin_block(int block, const BlockWork& work) override;
  ParamPtrs working_copy(int block, int k) override;
  void end_block(int block) override;
  // The staged block is no longer needed: hands it back (written back when
  // updated), keeping the block's slot.
  void retire_stage(int block);
  Slot& slot_for(int block);
  void* stored(DiskIo::Stage& st, int id) const {
    return st.payload() + static_cast<uint64_t>(layout_.tensor_offset(id)) * layout_.elem();
  }

  DiskStoreOptions opt_;
  DiskLayout layout_;
  std::vector<int64_t> updates_;  // per unit
  DiskIo io_;

  std::vector<DiskIo::Stage*> held_;  // per block: the stage acquire() handed out
  std::vector<Slot*> slot_of_;
  std::vector<Slot> ring_;
  int ring_next_ = 0;
  int lean_block_ = -1;  // resident block of a lean pass: one fp32 copy, staged θ held for the later copies
  int lean_made_ = 0;    // the copy its slot holds
  BlockWork lean_work_;
  AlignedBuffer<float> chunk_theta_, chunk_plus_, chunk_minus_;  // fp32 copies of a streamed chunk
};

}  // namespace zotune
