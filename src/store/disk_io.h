// The disk tier's stream I/O: moves unit files (disk_layout.h) between disk
// and page-aligned buffers. Owns the I/O thread and its task queue, the block
// stages (read-ahead, hand-out, write-back of block files), the chunked
// rewrite of a rows file (read-ahead, write-behind, the carried partial page),
// O_DIRECT, the fault-injection hook and the byte / second counters. It knows
// bytes and files, not the update rule: the caller edits a staged block or a
// chunk in place, and every file is replaced atomically (X.tmp, fdatasync,
// rename), so a crash leaves each unit wholly old or wholly new.
//
// Blocks: with overlap on, the I/O thread reads ahead (prefetch(b) stages b ..
// b + resident_blocks - 1) and writes released blocks back while the next one
// computes, like ZO2's upload / compute / offload streams; with overlap off,
// reads happen inside acquire() and writes inside release(), for measuring.
// Rows files: stream() reads the page-aligned range covering each chunk of
// rows, hands the chunk to the caller to edit in place and appends it to X.tmp;
// a chunk's partial last page is carried into the next chunk's buffer, so every
// write is whole pages at page offsets. With overlap on, the I/O thread reads
// chunk k+1 and writes chunk k-1 while chunk k computes (three chunk buffers),
// and fdatasync + rename run behind the caller; with overlap off all of it
// happens inline. Files are read and written with O_DIRECT where the file
// system allows it and their pages dropped from the page cache
// (posix_fadvise DONTNEED), so figures are the tier's, not the kernel cache's.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/hash.h"
#include "store/disk_layout.h"

namespace zotune {

struct StoreCounters;

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

struct DiskIoOptions {
  int resident_blocks = 1;  // blocks in use at once: resident_blocks + 2 stages with overlap
  bool overlap = true;
  // O_DIRECT (falls back to buffered I/O + fadvise(DONTNEED) where the file
  // system refuses it): measured on opt-125m, it removed the kernel's copy and
  // most of the write-back time (0.53 s vs 1.3 s a step, see the report).
  bool direct_io = true;
  DiskFaultHook fault;  // tests: simulate errors / crashes
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

class DiskIo {
 public:
  // A staged block file: its header page, then the payload the caller edits.
  struct Stage {
    int block = -1;
    bool dirty = false;  // the caller changed the payload: release() writes it back
    uint8_t* payload();

   private:
    friend class DiskIo;
    enum class State : uint8_t { Free, Reading, Ready, InUse, Writing };
    State state = State::Free;
    PageBuffer buf;       // header (4096 bytes) + padded payload
    int64_t updates = 0;  // header value expected (read) or to write
    std::exception_ptr error;
  };
  // Fills stored elements [begin, begin + n) of a new rows file at `out`.
  using FillFn = std::function<void(int64_t begin, int64_t n, uint8_t* out)>;
  // Chunk `rows` rows from row `row0` of a rows file being streamed: its stored
  // elements at `data`, edited in place when the file is rewritten.
  using ChunkFn = std::function<void(uint8_t* data, int64_t row0, int64_t rows)>;

  // Counters (bytes, seconds) go to `counters` when fold() runs on the caller's thread.
  DiskIo(const DiskLayout& layout, DiskIoOptions opt, StoreCounters& counters);
  ~DiskIo();
  DiskIo(const DiskIo&) = delete;
  DiskIo& operator=(const DiskIo&) = delete;
  // Starts the I/O thread (overlap on), once the files exist.
  void start();

  // Blocks. `updates`: the count the block file's header holds.
  // Stages blocks b .. b + resident_blocks - 1 (overlap on; else nothing).
  void prefetch(int block, const std::vector<int64_t>& updates);
  // Stages one block if a stage is free (overlap on; else nothing).
  void read_ahead(int block, int64_t updates);
  // Block b's file staged and handed out (waits for it, reading inline without overlap).
  Stage& acquire(int block, int64_t updates);
  // Gives a stage back: written back first (with `updates`) when dirty.
  void release(Stage& s, int64_t updates);
  // Creating a working copy, inline: block `block`'s file from the payload
  // `fill` writes (into a stage), rows unit `unit`'s file from `fill`, a slice at a time.
  void create_block_file(int block, int64_t updates, const std::function<void(uint8_t* payload)>& fill);
  void create_rows_file(int unit, int64_t updates, const FillFn& fill);

  // Walks rows unit `unit` ([rows, cols]) in chunks of chunk_rows rows; when
  // `rewrite`, the edited chunks become the new file, holding ++updates updates.
  void stream(int unit, int64_t rows, int64_t cols, int64_t chunk_rows, int64_t& updates, bool rewrite,
              const ChunkFn& fn);

  // Waits until the I/O thread is idle.
  void drain() const;
  // Waits for every write-back and syncs the directory; throws a failed write-back.
  void flush();
  // Moves the figures of the I/O thread into the counters.
  void fold();

 private:
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
  using State = Stage::State;

  // File I/O on a buffer (any thread; no lock held).
  void read_block(Stage& s);
  void write_block(Stage& s, int64_t updates);
  void run_io(IoRequest& r);
  void finish_rows(RowsWrite& w);
  int inject(DiskIoPoint p, int unit) const;
  void count(bool write, uint64_t bytes, double seconds);

  // mu_ held:
  Stage* take_free_stage(bool may_evict);
  void schedule_read(int block, int64_t updates);
  void retire(std::unique_lock<std::mutex>& lk, Stage& s, int64_t updates);
  void wait_idle(std::unique_lock<std::mutex>& lk) const;
  void wait_chunks(std::unique_lock<std::mutex>& lk);
  void rethrow_io_error();
  void io_loop();
  void push(const Task& t);

  // Streamed-tensor I/O: queued with overlap, inline without.
  static IoRequest io_request(bool write, int fd, int unit, uint8_t* buf, uint64_t off, uint64_t bytes, RowsWrite* into);
  void submit(IoRequest& r);
  void await(IoRequest& r);
  void await_rows_write(int unit);

  const DiskLayout& layout_;
  DiskIoOptions opt_;
  StoreCounters& counters_;
  std::size_t elem_;

  std::vector<std::unique_ptr<Stage>> stages_;
  // Streaming: chunk buffers, the header page of a temp file, the carried page,
  // and the temp file of each rows unit.
  ChunkBuf chunks_[3];
  PageBuffer header_page_;
  IoRequest header_io_;
  std::vector<uint8_t> carry_;
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
  IoTotals io_totals_, io_folded_;
};

}  // namespace zotune
