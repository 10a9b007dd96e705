// The disk tier (`--offload disk`): the weights live in a working copy on disk
// and stream through a few buffers in RAM, stored as fp32, bf16 or fp16
// (`--storage-dtype`).
//
// Layout of work_dir (one "unit" per file; E = bytes per stored element):
//   block-00012.bin     4096-byte header (magic "ZOTBLK02", block, numel,
//                       updates applied, dtype) then the block's non-streamed
//                       tensors in table order, E bytes each, padded to 4096
//                       bytes (so O_DIRECT stays possible)
//   rows-00000.bin      a streamed tensor (token embedding, untied lm_head;
//                       named by tensor id): the same header (magic
//                       "ZOTROW02", tensor id, ...) and the tensor's rows
//   disk-manifest.json  format, model type, dtype, per block: file, numel,
//                       tensors (name, shape, offset); per rows file: file,
//                       name, shape; and the updates each unit held when the
//                       manifest was last written. Written after every file
//                       exists, so its presence means "complete"
//
// Every file is replaced atomically (write X.tmp, fdatasync, rename), so a
// crash or kill at any point leaves each unit either wholly old or wholly new;
// its header says how many updates it holds. The header, not the manifest, is
// authoritative for that count: the trainer brings lagging units forward with
// catch_up() from its update log after a crash mid-step.
//
// Blocks: with overlap on, one I/O thread reads ahead (prefetch(b) stages b ..
// b + resident_blocks - 1, and the last block stages block 0 of the next step)
// and writes updated blocks back while the next block computes, like ZO2's
// upload / compute / offload streams. With overlap off, reads happen inside
// acquire() and writes inside acquire()/release(), for measuring.
// Streamed tensors: stream_rows() reads the page-aligned range covering each
// chunk of rows, applies the fused kernel in place, hands the chunk to the
// caller and appends it to X.tmp; a chunk's partial last page is carried into
// the next chunk's buffer, so every write is whole pages at page offsets. With
// overlap on, the same I/O thread reads chunk k+1 and writes chunk k-1 while
// chunk k computes (three chunk buffers), and fdatasync + rename run behind the
// caller; with overlap off all of it happens inline.
//
// 16-bit storage: the fused pass is kernels::zo_lowbit_update_perturb on the
// stored bits (stochastic rounding keyed by the update's seed), so after the
// same steps the files hold exactly the bits LowBitRamStore holds; working
// copies are fp32 (also for eval, since the model reads fp32).
//
// Memory (nothing scales with the vocabulary):
//   staging   resident_blocks + 2 buffers of the largest block file (block
//             files hold no streamed tensor, so block 0 is small)
//   working   resident_blocks ring slots of one fp32 copy of a block: the
//             tier is lean (BlockSession), W+ for the plus pass, then W-
//             from the still-staged values for the minus pass
//   streaming 3 chunk I/O buffers of chunk_rows * cols * E + 2 pages, and W+,
//             W- (and, 16-bit, θ) fp32 chunk copies of chunk_rows * cols
// Files are read and written with O_DIRECT (buffers and sizes are page
// multiples) and their pages are dropped from the page cache anyway
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
#include <optional>
#include <thread>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/hash.h"
#include "kernels/zo_lowbit.h"
#include "store/param_store.h"

namespace zotune {


// Where a fault-injection hook is called (tests only).
enum class DiskIoPoint : uint8_t {
  Read,          // before reading a block or rows file
  WriteTmp,      // before creating X.tmp
  WriteChunk,    // before each write into rows-XXXXX.bin.tmp: its header page, then each chunk's pages
                 // (on the I/O thread with overlap)
  BeforeRename,  // the temp file is complete and synced, not yet renamed
};
// Called with the unit's file (block-XXXXX.bin or rows-XXXXX.bin). Returns an
// errno to simulate at that point (0 = proceed); may also throw.
using DiskFaultHook = std::function<int(DiskIoPoint, const std::filesystem::path& file)>;

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
  DType storage_dtype = DType::F32;  // F32, BF16 or F16
  // Check every file's checksum each time it is read (not only when a working
  // copy is opened again): one XXH3 pass over the bytes read.
  bool verify_reads = false;
};

// Page-aligned (4096) owning byte storage: O_DIRECT needs block alignment.
class PageBuffer {
 public:
  PageBuffer() = default;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;
  ~PageBuffer() { std::free(p_); }
  // Grows (contents lost) to at least `bytes`, rounded up to whole pages.
  uint8_t* ensure(std::size_t bytes);
  void release() { std::free(p_); p_ = nullptr; cap_ = 0; }
  uint8_t* data() { return p_; }
  std::size_t capacity() const { return cap_; }

 private:
  uint8_t* p_ = nullptr;
  std::size_t cap_ = 0;
};

class DiskStore final : public ParamStore {
 public:
  static constexpr const char* kManifest = "disk-manifest.json";

  // A fresh working copy in opt.work_dir from `ckpt`, streamed one block (and
  // one slice of a streamed tensor) at a time; replaces any earlier working copy there.
  DiskStore(const Architecture& arch, const Checkpoint& ckpt, DiskStoreOptions opt);
  // The working copy already in opt.work_dir (resume). Throws naming the file if
  // the manifest is missing, belongs to another model or storage dtype, or a
  // unit's file is missing, truncated or corrupt: every file is read whole and
  // its bytes checked against the checksum in its header.
  static std::unique_ptr<DiskStore> open_existing(const Architecture& arch, DiskStoreOptions opt);
  // True if `work_dir` holds a complete working copy (manifest present).
  static bool has_working_copy(const std::filesystem::path& work_dir);
  ~DiskStore() override;

  void prefetch(int block) override;
  void stream_rows(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) override;
  void read_range(int id, int64_t first, int64_t count, float* out) const override;
  // Waits for every write-back, syncs the directory and rewrites the manifest.
  void sync() override;

  // Units: blocks 0 .. N-1, then one rows file per streamed tensor (ascending id).
  int num_units() const { return static_cast<int>(updates_.size()); }
  std::filesystem::path unit_path(int unit) const;
  // Updates applied to each unit (the step it was last updated at).
  const std::vector<int64_t>& unit_updates() const { return updates_; }
  std::filesystem::path block_path(int block) const { return unit_path(block); }
  std::filesystem::path rows_path(int tensor_id) const { return unit_path(rows_unit(tensor_id)); }
  // After a crash mid-step: brings every unit to records.size() updates,
  // replaying records[updates[u]] .. onto unit u (zo/replay.h; records[i] =
  // update i of the run, applied at step i + 1). A unit ahead of the log is an error.
  void catch_up(kernels::ZDist dist, float weight_decay, const std::vector<UpdateRecord>& records);

 private:
  enum class StageState : uint8_t { Free, Reading, Ready, InUse, Writing };
  struct Stage {
    StageState state = StageState::Free;
    int block = -1;
    bool dirty = false;
    bool holds_pointers = false;  // plus()/minus() point into it, or W- is still to be made from it
    PageBuffer buf;               // header (4096 bytes) + padded payload
    int64_t updates = 0;          // header value expected (read) or to write
    std::exception_ptr error;
  };
  // A rows file being rewritten: the temp file and the first failed write into it.
  struct RowsWrite {
    int unit = -1;
    int fd = -1;
    bool finishing = false;  // fdatasync + rename queued or running
    std::exception_ptr error;
    int64_t updates = 0;     // the new file's header: update count and payload checksum
    uint64_t hash = 0;
    PageBuffer header;       // its final header page (written last, before the rename)
  };
  // One pread / pwrite of a streamed tensor's pages.
  struct IoRequest {
    bool write = false;
    int fd = -1;
    int unit = -1;
    uint8_t* buf = nullptr;
    uint64_t off = 0, bytes = 0;
    RowsWrite* into = nullptr;  // writes: the temp file's state
    bool pending = false;       // queued or running on the I/O thread
    std::exception_ptr error;
  };
  struct ChunkBuf {
    PageBuffer buf;
    IoRequest io;
  };
  enum class TaskKind : uint8_t { ReadBlock, WriteBlock, Io, FinishRows };
  struct Task {
    TaskKind kind = TaskKind::ReadBlock;
    Stage* stage = nullptr;
    IoRequest* io = nullptr;
    RowsWrite* rows = nullptr;
  };
  struct Slot {
    AlignedBuffer<float> w;  // the resident block's one fp32 copy (W+, then W-; or θ)
  };

  DiskStore(const Architecture& arch, DiskStoreOptions opt, bool);
  void begin_block(int block, const BlockWork& work) override;
  ParamPtrs working_copy(int block, int k) override;
  void end_block(int block) override;
  void init_layout();
  void write_manifest();
  void load_manifest();
  int64_t read_header(int unit) const;
  void check_header(const uint8_t* page, int unit, int64_t expect_updates, const std::filesystem::path& path) const;
  // `hash`: the payload's checksum (null: none yet, a rows file being streamed).
  void fill_header(uint8_t* page, int unit, int64_t updates, const uint64_t* hash = nullptr) const;
  // The checksum a header page records, if any.
  static std::optional<uint64_t> header_hash(const uint8_t* page);
  // Reads unit u's file whole and checks its payload against its header's checksum.
  void verify_unit(int unit) const;
  [[noreturn]] void checksum_mismatch(int unit, uint64_t want, uint64_t got) const;
  int rows_unit(int tensor_id) const;
  int64_t unit_numel(int unit) const;
  uint64_t unit_file_bytes(int unit) const;
  void create_rows_file(int id, const Checkpoint& ckpt);

  // File I/O on a stage's buffer (any thread; no lock held).
  void read_block(Stage& s);
  void write_block(Stage& s, int64_t updates);
  void run_io(IoRequest& r);
  void finish_rows(RowsWrite& w);
  int inject(DiskIoPoint p, int unit) const;

  // Streamed-tensor I/O: queued with overlap, inline without.
  static IoRequest io_request(bool write, int fd, int unit, uint8_t* buf, uint64_t off, uint64_t bytes, RowsWrite* into);
  void submit(IoRequest& r);
  void await(IoRequest& r);
  void await_rows_write(int unit);
  void stream_unit(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn);

  Stage& stage_for_acquire(std::unique_lock<std::mutex>& lk, int block);
  Stage* take_free_stage(bool may_evict);
  void retire(std::unique_lock<std::mutex>& lk, Stage& s);
  void schedule_read(int block);
  void io_loop();
  void drain(std::unique_lock<std::mutex>& lk) const;
  void rethrow_io_error();
  void fold_counters();
  Slot& slot_for(int block);
  int lean_block_ = -1;  // resident block of a lean pass: one fp32 copy, staged θ held for the later copies
  int lean_made_ = 0;    // the copy its slot holds
  int lean_last_ = 0;    // the last copy the work wants
  BlockWork lean_work_;

  DiskStoreOptions opt_;
  std::size_t elem_ = sizeof(float);  // bytes per stored element (codec_.bytes())
  std::vector<int64_t> tensor_offset_;  // offset (elements) of each tensor inside its block
  std::vector<int> rows_ids_;           // streamed tensor of each rows unit
  std::vector<int64_t> updates_;        // per unit

  std::vector<std::unique_ptr<Stage>> stages_;
  std::vector<Stage*> held_;  // per block: the stage acquire() handed out
  std::vector<Slot*> slot_of_;
  std::vector<Slot> ring_;
  int ring_next_ = 0;

  // Streaming: chunk buffers, the header page of a temp file, the carried page,
  // fp32 chunk copies, and the temp file of each rows unit.
  ChunkBuf chunks_[3];
  PageBuffer header_page_;
  IoRequest header_io_;
  std::vector<uint8_t> carry_;
  AlignedBuffer<float> chunk_theta_, chunk_plus_, chunk_minus_;
  std::vector<std::unique_ptr<RowsWrite>> rows_writes_;
  Hasher read_hash_, write_hash_;  // of the rows file being streamed

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
};

}  // namespace zotune
