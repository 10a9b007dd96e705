// The disk tier's stream I/O (disk_io.h), rows files: the page-aligned chunk
// reads and writes of a streamed tensor's file with read-ahead, write-behind
// and the carried partial page, and the atomic commit of its rewrite.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include "base/error.h"
#include "store/disk_files.h"
#include "store/disk_io.h"
#include "store/param_store.h"

namespace zotune {

using namespace disk;  // NOLINT: the tier's private helpers (disk_files.h)

void DiskIo::run_io(IoRequest& r) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path path = layout_.unit_path(r.unit);
  if (r.write) {
    if (int e = inject(DiskIoPoint::WriteChunk, r.unit)) write_failed(path, "write", e);
    if (int e = pwrite_all(r.fd, r.buf, r.bytes, r.off)) write_failed(path, "write", e);
  } else {
    pread_all(r.fd, r.buf, r.bytes, r.off, path);
  }
  count(r.write, r.bytes, seconds_since(t0));
}

void DiskIo::finish_rows(RowsWrite& w) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path path = layout_.unit_path(w.unit), tmp = tmp_of(path);
  Fd f{std::exchange(w.fd, -1)};
  if (w.error) {  // a chunk failed on the I/O thread: the old file stays
    if (is_io_error(w.error)) ::unlink(tmp.c_str());
    std::rethrow_exception(std::exchange(w.error, nullptr));
  }
  // The header goes last: only now is the payload's checksum known.
  uint8_t* page = w.header.ensure(kPage);
  layout_.fill_header(page, w.unit, w.updates, &w.hash);
  if (int e = pwrite_all(f.fd, page, kPage, 0)) write_failed(path, "write", e);
  commit_tmp(f, path, tmp, [&] { return inject(DiskIoPoint::BeforeRename, w.unit); });
  count(true, 0, seconds_since(t0));
}

DiskIo::IoRequest DiskIo::io_request(bool write, int fd, int unit, uint8_t* buf, uint64_t off, uint64_t bytes,
                                     RowsWrite* into) {
  IoRequest r;
  r.write = write;
  r.fd = fd;
  r.unit = unit;
  r.buf = buf;
  r.off = off;
  r.bytes = bytes;
  r.into = into;
  return r;
}

void DiskIo::submit(IoRequest& r) {
  if (!opt_.overlap) {
    run_io(r);
    return;
  }
  std::lock_guard lk(mu_);
  r.pending = true;
  r.error = nullptr;
  push({TaskKind::Io, nullptr, &r, nullptr});
}

void DiskIo::await(IoRequest& r) {
  if (!opt_.overlap) return;
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !r.pending; });
  counters_.io_wait_seconds += seconds_since(t0);
  if (r.error) std::rethrow_exception(std::exchange(r.error, nullptr));
}

void DiskIo::await_rows_write(int unit) {
  RowsWrite& w = *rows_writes_[static_cast<std::size_t>(unit - layout_.num_blocks())];
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !w.finishing; });
  rethrow_io_error();
}

void DiskIo::wait_chunks(std::unique_lock<std::mutex>& lk) {
  cv_.wait(lk, [&] {
    return !header_io_.pending && std::none_of(std::begin(chunks_), std::end(chunks_), [](const ChunkBuf& c) { return c.io.pending; });
  });
}

void DiskIo::stream(int u, int64_t rows, int64_t cols, int64_t chunk_rows, int64_t& updates, bool writing,
                    const ChunkFn& fn) {
  RowsWrite& rw = *rows_writes_[static_cast<std::size_t>(u - layout_.num_blocks())];
  await_rows_write(u);  // the previous rewrite of this file is in place
  {
    // Buffers of an earlier stream may still be in flight (their errors went to that stream's file).
    std::unique_lock lk(mu_);
    wait_chunks(lk);
    header_io_.error = nullptr;
    for (auto& c : chunks_) c.io.error = nullptr;
  }
  const fs::path path = layout_.unit_path(u);
  const int64_t cap = std::min(chunk_rows, rows) * cols;
  for (auto& c : chunks_) c.buf.ensure(static_cast<uint64_t>(cap) * elem_ + 2 * kPage);
  const int64_t nchunks = (rows + chunk_rows - 1) / chunk_rows;
  auto byte_range = [&](int64_t k) {
    const int64_t r0 = k * chunk_rows, nr = std::min(chunk_rows, rows - r0);
    return std::pair<uint64_t, uint64_t>{static_cast<uint64_t>(r0 * cols) * elem_,
                                         static_cast<uint64_t>((r0 + nr) * cols) * elem_};
  };

  Fd in;
  std::optional<uint64_t> want_hash;  // --verify-reads: the file's checksum
  read_hash_.reset();
  write_hash_.reset();
  try {
    if (int e = inject(DiskIoPoint::Read, u)) fail(path.string(), ": read failed: ", errno_text(e));
    in.fd = open_file(path, O_RDONLY, opt_.direct_io);
    check(in.fd >= 0, path.string(), ": cannot open rows file: ", errno_text(errno));
    uint8_t* page = header_page_.ensure(kPage);
    {
      const auto t0 = std::chrono::steady_clock::now();
      pread_all(in.fd, page, kPage, 0, path);
      layout_.check_header(page, u, updates, path);
      want_hash = opt_.verify_reads ? DiskLayout::header_hash(page) : std::nullopt;
      count(false, kPage, seconds_since(t0));
    }
    if (writing) {
      if (int e = inject(DiskIoPoint::WriteTmp, u)) write_failed(path, "write", e);
      rw.fd = open_file(tmp_of(path), O_WRONLY | O_CREAT | O_TRUNC, opt_.direct_io);
      if (rw.fd < 0) write_failed(path, "create", errno);
      rw.error = nullptr;
      layout_.fill_header(page, u, updates + 1);
      header_io_ = io_request(true, rw.fd, u, page, 0, kPage, &rw);
      submit(header_io_);
    }
    auto read_chunk = [&](int64_t k) {
      const auto [b0, b1] = byte_range(k);
      ChunkBuf& c = chunks_[k % 3];
      c.io = io_request(false, in.fd, u, c.buf.data(), kPage + page_floor(b0), page_ceil(b1) - page_floor(b0), nullptr);
      submit(c.io);
    };
    read_chunk(0);
    for (int64_t k = 0; k < nchunks; ++k) {
      ChunkBuf& c = chunks_[k % 3];
      await(c.io);
      const auto [b0, b1] = byte_range(k);
      const uint64_t p0 = page_floor(b0);
      const bool last = k + 1 == nchunks;
      // Bytes [p0, end) of the payload: each chunk's own pages, as read and as
      // written (the carried partial page belongs to the next chunk).
      const uint64_t end = last ? page_ceil(b1) : page_floor(b1);
      if (want_hash && end > p0) read_hash_.update(c.buf.data(), end - p0);
      if (k + 1 < nchunks) {
        await(chunks_[(k + 1) % 3].io);  // the write of chunk k - 2 left that buffer
        read_chunk(k + 1);
      }
      const int64_t r0 = k * chunk_rows;
      fn(c.buf.data() + (b0 - p0), r0, std::min(chunk_rows, rows - r0));
      if (!writing) continue;
      // The page this chunk starts in begins with the previous chunk's updated
      // bytes (this buffer read them before the update); its own partial last
      // page goes on to the next chunk.
      std::memcpy(c.buf.data(), carry_.data(), b0 - p0);
      if (last) std::memset(c.buf.data() + (b1 - p0), 0, page_ceil(b1) - b1);
      else std::memcpy(carry_.data(), c.buf.data() + (page_floor(b1) - p0), b1 - page_floor(b1));
      if (end > p0) {
        write_hash_.update(c.buf.data(), end - p0);
        c.io = io_request(true, rw.fd, u, c.buf.data(), kPage + p0, end - p0, &rw);
        submit(c.io);
      }
    }
    if (want_hash && read_hash_.digest() != *want_hash) layout_.checksum_mismatch(u, *want_hash, read_hash_.digest());
    if (writing) {
      ++updates;
      rw.updates = updates;
      rw.hash = write_hash_.digest();
      if (opt_.overlap) {
        std::lock_guard lk(mu_);
        rw.finishing = true;
        push({TaskKind::FinishRows, nullptr, nullptr, &rw});
      } else {
        finish_rows(rw);
      }
    }
  } catch (...) {
    const std::exception_ptr err = std::current_exception();
    {
      std::unique_lock lk(mu_);
      wait_chunks(lk);
      // An update that did not reach the file: the store no longer matches the run.
      if (writing && !io_error_) io_error_ = err;
    }
    if (rw.fd >= 0 && !rw.finishing) {
      ::close(std::exchange(rw.fd, -1));
      if (is_io_error(err)) ::unlink(tmp_of(path).c_str());
    }
    throw;
  }
  ::posix_fadvise(in.fd, 0, 0, POSIX_FADV_DONTNEED);
}

}  // namespace zotune
