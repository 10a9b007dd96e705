// Private to the disk tier's .cpp files: the file format's constants and
// header record, and the POSIX I/O helpers (whole reads and writes, O_DIRECT
// opening, atomic temp-file commits) that store/disk_*.cpp share.
#pragma once
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <utility>

#include "base/error.h"

namespace zotune::disk {

namespace fs = std::filesystem;

inline constexpr uint64_t kPage = 4096;
inline constexpr char kBlockMagic[8] = {'Z', 'O', 'T', 'B', 'L', 'K', '0', '2'};
inline constexpr char kRowsMagic[8] = {'Z', 'O', 'T', 'R', 'O', 'W', '0', '2'};
inline constexpr const char* kFormat = "zotune-disk-v2";
// Elements converted per write when creating a rows file: bounds the RAM and
// the checkpoint pages a 150k-token embedding occupies while it is copied.
inline constexpr int64_t kLoadChunk = int64_t{1} << 20;

struct UnitHeader {
  char magic[8];
  int64_t index;  // block, or tensor id of a rows file
  int64_t numel;
  int64_t updates;
  char dtype[8];  // "F32", "BF16", "F16"
  // XXH3-64 of the file's bytes after this header page (payload and its zero
  // padding), written with them; kind 0 (files of older versions): none.
  uint64_t payload_hash;
  uint32_t hash_kind;  // kHashXxh3 or 0
  uint32_t reserved;
};
inline constexpr uint32_t kHashXxh3 = 1;

inline uint64_t page_floor(uint64_t b) { return b / kPage * kPage; }
inline uint64_t page_ceil(uint64_t b) { return (b + kPage - 1) / kPage * kPage; }

inline std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Closes on scope exit; errors of close() after a successful fdatasync do not lose data.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// O_DIRECT where the file system has it (tmpfs refuses it with EINVAL).
inline int open_file(const fs::path& path, int flags, bool direct) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
  if (fd < 0 && errno == EINVAL && direct) fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  return fd;
}

inline void pread_all(int fd, void* buf, uint64_t n, uint64_t off, const fs::path& path) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(path.string(), ": read failed: ", errno_text(errno));
    if (r == 0) fail(path.string(), ": file is truncated (", n, " bytes missing at offset ", off, ")");
    p += r;
    n -= static_cast<uint64_t>(r);
    off += static_cast<uint64_t>(r);
  }
}

// Returns 0 or the errno of the failed write (ENOSPC for a write of 0 bytes).
inline int pwrite_all(int fd, const void* buf, uint64_t n, uint64_t off) {
  const auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : ENOSPC;
    p += w;
    n -= static_cast<uint64_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return 0;
}

inline fs::path tmp_of(const fs::path& p) {
  fs::path t = p;
  t += ".tmp";
  return t;
}

// Our own I/O errors remove the temp file they leave; anything else (a test's
// simulated crash) leaves it, as a kill would.
inline bool is_io_error(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error&) {
    return true;
  } catch (...) {
    return false;
  }
}

[[noreturn]] inline void write_failed(const fs::path& path, const char* what, int e) {
  const fs::path tmp = tmp_of(path);
  ::unlink(tmp.c_str());
  fail(tmp.string(), ": ", what, " failed: ", errno_text(e), " (the previous state in ", path.filename().string(),
       " is intact)");
}

// A complete temp file replaces `path`: fdatasync, close, rename. `before_rename`
// is the fault hook's last say (an errno to simulate, or 0).
inline void commit_tmp(Fd& f, const fs::path& path, const fs::path& tmp, const std::function<int()>& before_rename) {
  if (::fdatasync(f.fd) != 0) write_failed(path, "fdatasync", errno);
  // Clean pages after fdatasync: dropping them keeps the page cache out of the figures.
  ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
  if (::close(std::exchange(f.fd, -1)) != 0) write_failed(path, "close", errno);
  if (int e = before_rename()) write_failed(path, "rename", e);
  if (::rename(tmp.c_str(), path.c_str()) != 0) write_failed(path, "rename", errno);
}

}  // namespace zotune::disk
