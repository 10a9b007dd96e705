// The disk tier (`--offload disk`): the weights live in a working copy on disk,
// one file per block, and stream through a few fp32 staging buffers in RAM.
//
// Layout of work_dir:
//   block-00012.bin     4096-byte header (magic, block, numel, updates applied)
//                       then the block's tensors as raw fp32 in table order,
//                       padded to 4096 bytes (so O_DIRECT stays possible)
//   disk-manifest.json  model type, dtype, per block: file, numel, tensors
//                       (name, shape, offset) and the updates applied when the
//                       manifest was last written; written after every block
//                       file exists, so its presence means "complete"
//
// A block file is replaced atomically (write block-XXXXX.bin.tmp, fdatasync,
// rename), so a crash or kill at any point leaves each block either wholly old
// or wholly new; its header says how many updates it holds. The header, not the
// manifest, is authoritative for that count: the trainer brings lagging blocks
// forward with catch_up() from its update log after a crash mid-step.
//
// With overlap on, one I/O thread reads ahead (prefetch(b) stages b ..
// b + resident_blocks - 1, and the last block stages block 0 of the next step)
// and writes updated blocks back while the next block computes, like ZO2's
// upload / compute / offload streams. With overlap off, reads happen inside
// acquire() and writes inside acquire()/release(), for measuring.
//
// Memory: resident_blocks + 2 staging buffers; buffers that grew past the
// largest decoder layer (embeddings, an untied head) are freed after use, so
// at most two of them are large at once. Working copies (plus/minus) live in
// resident_blocks ring slots plus a pinned slot for block 0 when the head is
// tied. Block files are read and written with O_DIRECT (buffers and sizes are
// page multiples) and their pages are dropped from the page cache anyway
// (posix_fadvise DONTNEED), so memory and bandwidth figures are those of the
// tier, not of the kernel's cache. pread, not mmap: mapped pages would count in
// RSS and a read-ahead copy costs the same (measured, see the report).
#pragma once
#include <condition_variable>
#include <cstdlib>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/aligned_buffer.h"
#include "store/param_store.h"

namespace zotune {

struct UpdateRecord;

// Where a fault-injection hook is called (tests only).
enum class DiskIoPoint : uint8_t {
  Read,          // before reading a block file
  WriteTmp,      // before writing block-XXXXX.bin.tmp
  BeforeRename,  // the temp file is complete and synced, not yet renamed
};
// Returns an errno to simulate at that point (0 = proceed); may also throw.
using DiskFaultHook = std::function<int(DiskIoPoint, int block)>;

struct DiskStoreOptions {
  std::filesystem::path work_dir;
  int resident_blocks = 1;
  bool overlap = true;
  // O_DIRECT (falls back to buffered I/O + fadvise(DONTNEED) where the file
  // system refuses it): measured on opt-125m, it removed the kernel's copy and
  // most of the write-back time (0.53 s vs 1.3 s a step, see the report).
  bool direct_io = true;
  int64_t initial_updates = 0;  // updates the input checkpoint already holds (its step)
  DiskFaultHook fault;          // tests: simulate errors / crashes
};

// Page-aligned (4096) owning float storage: O_DIRECT needs block alignment.
class PageBuffer {
 public:
  PageBuffer() = default;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;
  ~PageBuffer() { std::free(p_); }
  // Grows (contents lost) to at least n floats.
  float* ensure(std::size_t n);
  void release() { std::free(p_); p_ = nullptr; cap_ = 0; }
  float* data() { return p_; }
  std::size_t capacity() const { return cap_; }

 private:
  float* p_ = nullptr;
  std::size_t cap_ = 0;
};

class DiskStore final : public ParamStore {
 public:
  static constexpr const char* kManifest = "disk-manifest.json";

  // A fresh working copy in opt.work_dir from `ckpt`, streamed one block at a
  // time (replaces any earlier working copy there).
  DiskStore(const Architecture& arch, const Checkpoint& ckpt, DiskStoreOptions opt);
  // The working copy already in opt.work_dir (resume). Throws naming the file if
  // the manifest is missing, belongs to another model, or a block file is
  // missing, truncated or corrupt.
  static std::unique_ptr<DiskStore> open_existing(const Architecture& arch, DiskStoreOptions opt);
  // True if `work_dir` holds a complete working copy (manifest present).
  static bool has_working_copy(const std::filesystem::path& work_dir);
  ~DiskStore() override;

  void acquire(int block, const BlockWork& work) override;
  void release(int block) override;
  void prefetch(int block) override;
  void read_tensor(int id, float* out) const override;
  DType storage_dtype() const override { return DType::F32; }
  // Waits for every write-back, syncs the directory and rewrites the manifest.
  void sync() override;

  // Updates applied to each block (the step it was last updated at).
  const std::vector<int64_t>& block_updates() const { return updates_; }
  // After a crash mid-step: brings every block to records.size() updates,
  // applying records[updates_[b]] .. to block b (records[i] = update i of the
  // run, i.e. the one applied at step i + 1). A block ahead of the log is an error.
  void catch_up(kernels::ZDist dist, float weight_decay, const std::vector<UpdateRecord>& records);
  std::filesystem::path block_path(int block) const;

 private:
  enum class StageState : uint8_t { Free, Reading, Ready, InUse, Writing };
  struct Stage {
    StageState state = StageState::Free;
    int block = -1;
    bool dirty = false;
    bool holds_pointers = false;  // plus()/minus() point into this buffer
    PageBuffer buf;               // header (4096 bytes) + padded payload
    int64_t updates = 0;          // header value expected (read) or to write
    std::exception_ptr error;
  };
  struct Task {
    bool write = false;
    Stage* stage = nullptr;
  };
  struct Slot {
    AlignedBuffer<float> plus, minus;
  };

  DiskStore(const Architecture& arch, DiskStoreOptions opt, bool);
  void init_layout();
  void write_manifest();
  void load_manifest();
  int64_t read_header(int block) const;

  // File I/O on a stage's buffer (any thread; no lock held).
  void read_block(Stage& s);
  void write_block(Stage& s, int64_t updates);
  int inject(DiskIoPoint p, int block) const;

  Stage& stage_for_acquire(std::unique_lock<std::mutex>& lk, int block);
  Stage* take_free_stage(bool may_evict);
  void retire(std::unique_lock<std::mutex>& lk, Stage& s);
  void schedule_read(int block);
  void io_loop();
  void drain(std::unique_lock<std::mutex>& lk) const;
  void rethrow_io_error();
  void fold_counters();
  Slot& slot_for(int block);

  DiskStoreOptions opt_;
  std::vector<int64_t> block_numel_;
  std::vector<int64_t> tensor_offset_;  // offset of each tensor inside its block
  std::vector<int64_t> updates_;
  int64_t max_layer_numel_ = 0;
  bool pin_block0_ = false;

  std::vector<std::unique_ptr<Stage>> stages_;
  std::vector<Stage*> held_;  // per block: the stage acquire() handed out
  std::vector<Slot*> slot_of_;
  std::vector<Slot> ring_;
  Slot pinned_;
  int ring_next_ = 0;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::deque<Task> queue_;
  mutable int busy_ = 0;  // tasks taken by the I/O thread, not finished
  bool stop_ = false;
  std::exception_ptr io_error_;  // first failed write-back: the store is broken
  std::thread io_;

  // Figures from the I/O thread, folded into counters_ by the caller's thread.
  struct IoTotals {
    uint64_t read = 0, written = 0;
    double read_s = 0, write_s = 0;
  };
  mutable IoTotals io_totals_, io_folded_;
  double wait_s_ = 0;
};

}  // namespace zotune
