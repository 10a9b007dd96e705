// The disk tier's stream I/O (disk_io.h), blocks: the I/O thread, the stages
// a block file is read into and written back from, creating unit files, and
// the counters. Rows-file streaming: disk_stream.cpp.
#include "store/disk_io.h"

#include <chrono>
#include <cstring>

#include "base/error.h"
#include "store/disk_files.h"
#include "store/param_store.h"

namespace zotune {

using namespace disk;  // NOLINT: the tier's private helpers (disk_files.h)

uint8_t* PageBuffer::ensure(std::size_t bytes) {
  if (bytes <= cap_ && p_) return p_;
  release();
  const std::size_t n = std::max<std::size_t>(page_ceil(bytes), kPage);
  p_ = static_cast<uint8_t*>(std::aligned_alloc(kPage, n));
  if (!p_) throw std::bad_alloc();
  cap_ = n;
  return p_;
}

uint8_t* DiskIo::Stage::payload() { return buf.data() + kPage; }

DiskIo::DiskIo(const DiskLayout& layout, DiskIoOptions opt, StoreCounters& counters)
    : layout_(layout), opt_(std::move(opt)), counters_(counters), elem_(layout.elem()) {
  for (int u = layout_.num_blocks(); u < layout_.num_units(); ++u) {
    rows_writes_.push_back(std::make_unique<RowsWrite>());
    rows_writes_.back()->unit = u;
  }
  for (int i = 0; i < opt_.resident_blocks + 2; ++i) stages_.push_back(std::make_unique<Stage>());
  carry_.assign(kPage, 0);
}

void DiskIo::start() {
  if (opt_.overlap) io_ = std::thread([this] { io_loop(); });
}

DiskIo::~DiskIo() {
  if (io_.joinable()) {
    {
      std::unique_lock lk(mu_);
      wait_idle(lk);
      stop_ = true;
    }
    cv_.notify_all();
    io_.join();
  }
  // A rows file whose stream failed before its temp file was handed on.
  for (auto& w : rows_writes_)
    if (w->fd >= 0) ::close(std::exchange(w->fd, -1));
}

int DiskIo::inject(DiskIoPoint p, int unit) const { return opt_.fault ? opt_.fault(p, layout_.unit_path(unit)) : 0; }

void DiskIo::count(bool write, uint64_t bytes, double seconds) {
  std::lock_guard lk(mu_);
  (write ? io_totals_.written : io_totals_.read) += bytes;
  (write ? io_totals_.write_s : io_totals_.read_s) += seconds;
}

void DiskIo::fold() {
  std::lock_guard lk(mu_);
  counters_.param_bytes_read += io_totals_.read - io_folded_.read;
  counters_.param_bytes_written += io_totals_.written - io_folded_.written;
  counters_.io_read_seconds += io_totals_.read_s - io_folded_.read_s;
  counters_.io_write_seconds += io_totals_.write_s - io_folded_.write_s;
  io_folded_ = io_totals_;
}

// ---- block files (any thread, no lock held)

void DiskIo::read_block(Stage& s) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path path = layout_.unit_path(s.block);
  const uint64_t bytes = layout_.unit_file_bytes(s.block);
  uint8_t* buf = s.buf.ensure(bytes);
  if (int e = inject(DiskIoPoint::Read, s.block)) fail(path.string(), ": read failed: ", errno_text(e));
  Fd f{open_file(path, O_RDONLY, opt_.direct_io)};
  check(f.fd >= 0, path.string(), ": cannot open block file: ", errno_text(errno));
  pread_all(f.fd, buf, bytes, 0, path);
  ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
  layout_.check_header(buf, s.block, s.updates, path);
  if (opt_.verify_reads)
    if (const auto want = DiskLayout::header_hash(buf)) {
      const uint64_t got = hash64(buf + kPage, bytes - kPage);
      if (got != *want) layout_.checksum_mismatch(s.block, *want, got);
    }
  count(false, bytes, seconds_since(t0));
}

void DiskIo::write_block(Stage& s, int64_t updates) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path path = layout_.unit_path(s.block), tmp = tmp_of(path);
  const uint64_t bytes = layout_.unit_file_bytes(s.block);
  const uint64_t hash = hash64(s.buf.data() + kPage, bytes - kPage);
  layout_.fill_header(s.buf.data(), s.block, updates, &hash);
  // A simulated crash (the hook throws) leaves the temp file behind, as a kill would.
  if (int e = inject(DiskIoPoint::WriteTmp, s.block)) write_failed(path, "write", e);
  {
    Fd f{open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC, opt_.direct_io)};
    if (f.fd < 0) write_failed(path, "create", errno);
    if (int e = pwrite_all(f.fd, s.buf.data(), bytes, 0)) write_failed(path, "write", e);
    commit_tmp(f, path, tmp, [&] { return inject(DiskIoPoint::BeforeRename, s.block); });
  }
  count(true, bytes, seconds_since(t0));
}

// ---- creating a working copy (inline)

void DiskIo::create_block_file(int block, int64_t updates, const std::function<void(uint8_t*)>& fill) {
  Stage& s = *stages_[0];
  const uint64_t bytes = layout_.unit_file_bytes(block);
  uint8_t* payload = s.buf.ensure(bytes) + kPage;
  fill(payload);
  const uint64_t used = static_cast<uint64_t>(layout_.unit_numel(block)) * elem_;
  std::memset(payload + used, 0, bytes - kPage - used);
  s.block = block;
  write_block(s, updates);
  s.block = -1;
}

void DiskIo::create_rows_file(int u, int64_t updates, const FillFn& fill) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path path = layout_.unit_path(u), tmp = tmp_of(path);
  const int64_t n = layout_.unit_numel(u);
  if (int e = inject(DiskIoPoint::WriteTmp, u)) write_failed(path, "write", e);
  {
    Fd f{open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC, opt_.direct_io)};
    if (f.fd < 0) write_failed(path, "create", errno);
    uint8_t* page = header_page_.ensure(kPage);
    layout_.fill_header(page, u, updates);
    if (int e = pwrite_all(f.fd, page, kPage, 0)) write_failed(path, "write", e);
    Hasher hash;
    uint8_t* buf = stages_[0]->buf.ensure(static_cast<uint64_t>(std::min(n, kLoadChunk)) * elem_);
    for (int64_t b = 0; b < n; b += kLoadChunk) {
      const int64_t m = std::min(kLoadChunk, n - b);
      fill(b, m, buf);
      const uint64_t bytes = static_cast<uint64_t>(m) * elem_;
      std::memset(buf + bytes, 0, page_ceil(bytes) - bytes);  // only the last slice is not whole pages
      if (int e = pwrite_all(f.fd, buf, page_ceil(bytes), kPage + static_cast<uint64_t>(b) * elem_))
        write_failed(path, "write", e);
      hash.update(buf, page_ceil(bytes));
    }
    const uint64_t h = hash.digest();
    layout_.fill_header(page, u, updates, &h);
    if (int e = pwrite_all(f.fd, page, kPage, 0)) write_failed(path, "write", e);
    if (::fdatasync(f.fd) != 0) write_failed(path, "fdatasync", errno);
    ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
    if (::close(std::exchange(f.fd, -1)) != 0) write_failed(path, "close", errno);
  }
  if (int e = inject(DiskIoPoint::BeforeRename, u)) write_failed(path, "rename", e);
  if (::rename(tmp.c_str(), path.c_str()) != 0) write_failed(path, "rename", errno);
  count(true, layout_.unit_file_bytes(u), seconds_since(t0));
}

// ---- stages (mu_ held unless noted)

DiskIo::Stage* DiskIo::take_free_stage(bool may_evict) {
  for (auto& s : stages_)
    if (s->state == State::Free) return s.get();
  if (may_evict)
    for (auto& s : stages_)
      if (s->state == State::Ready) {
        s->state = State::Free;
        s->error = nullptr;
        return s.get();
      }
  return nullptr;
}

void DiskIo::push(const Task& t) {
  queue_.push_back(t);
  cv_.notify_all();
}

void DiskIo::schedule_read(int block, int64_t updates) {
  for (auto& s : stages_)
    if (s->block == block && s->state != State::Free && s->state != State::Writing) return;
  Stage* s = take_free_stage(false);
  if (!s) return;
  s->block = block;
  s->updates = updates;
  s->state = State::Reading;
  s->error = nullptr;
  push({TaskKind::ReadBlock, s, nullptr, nullptr});
}

void DiskIo::prefetch(int block, const std::vector<int64_t>& updates) {
  if (!opt_.overlap) return;
  std::lock_guard lk(mu_);
  for (int k = 0; k < opt_.resident_blocks && block + k < layout_.num_blocks(); ++k)
    schedule_read(block + k, updates[static_cast<std::size_t>(block + k)]);
}

void DiskIo::read_ahead(int block, int64_t updates) {
  if (!opt_.overlap) return;
  std::lock_guard lk(mu_);
  schedule_read(block, updates);
}

DiskIo::Stage& DiskIo::acquire(int block, int64_t updates) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock lk(mu_);
  for (;;) {
    rethrow_io_error();
    Stage* found = nullptr;
    for (auto& s : stages_)
      if (s->block == block && (s->state == State::Reading || s->state == State::Ready)) found = s.get();
    if (found && found->state == State::Ready) {
      if (found->error) {
        auto e = std::exchange(found->error, nullptr);
        found->state = State::Free;
        std::rethrow_exception(e);
      }
      found->state = State::InUse;
      counters_.io_wait_seconds += seconds_since(t0);
      return *found;
    }
    if (!found) {
      if (Stage* s = take_free_stage(true)) {
        s->block = block;
        s->updates = updates;
        s->error = nullptr;
        s->state = State::Reading;
        if (opt_.overlap) {
          push({TaskKind::ReadBlock, s, nullptr, nullptr});
        } else {
          lk.unlock();
          try {
            read_block(*s);
          } catch (...) {
            lk.lock();
            s->state = State::Free;
            throw;
          }
          lk.lock();
          s->state = State::Ready;
        }
        continue;
      }
    }
    cv_.wait(lk);
  }
}

void DiskIo::release(Stage& s, int64_t updates) {
  std::unique_lock lk(mu_);
  retire(lk, s, updates);
}

void DiskIo::retire(std::unique_lock<std::mutex>& lk, Stage& s, int64_t updates) {
  if (!s.dirty) {
    s.state = State::Free;
    cv_.notify_all();
    return;
  }
  s.dirty = false;
  s.updates = updates;
  s.state = State::Writing;
  if (opt_.overlap) {
    push({TaskKind::WriteBlock, &s, nullptr, nullptr});
    return;
  }
  lk.unlock();
  try {
    write_block(s, s.updates);
  } catch (...) {
    lk.lock();
    io_error_ = std::current_exception();
    s.state = State::Free;
    throw;
  }
  lk.lock();
  s.state = State::Free;
}

// ---- the I/O thread

void DiskIo::io_loop() {
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
        t.stage->state = State::Ready;
        break;
      case TaskKind::WriteBlock:
        if (err && !io_error_) io_error_ = err;
        t.stage->state = State::Free;
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

void DiskIo::wait_idle(std::unique_lock<std::mutex>& lk) const {
  cv_.wait(lk, [&] { return queue_.empty() && busy_ == 0; });
}

void DiskIo::rethrow_io_error() {
  // A lost write-back breaks the run: every later call reports it.
  if (io_error_) std::rethrow_exception(io_error_);
}

void DiskIo::drain() const {
  std::unique_lock lk(mu_);
  wait_idle(lk);
}

void DiskIo::flush() {
  {
    std::unique_lock lk(mu_);
    wait_idle(lk);
    rethrow_io_error();
  }
  const fs::path& dir = layout_.work_dir();
  Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  check(d.fd >= 0 && ::fsync(d.fd) == 0, dir.string(), ": fsync of the work directory failed: ", errno_text(errno));
}

}  // namespace zotune
