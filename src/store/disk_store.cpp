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
#include "kernels/kernels.h"
#include "model/blocks.h"
#include "model/weights.h"
#include "store/storage_convert.h"
#include "zo/replay.h"

namespace zotune {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kPage = 4096;
constexpr char kBlockMagic[8] = {'Z', 'O', 'T', 'B', 'L', 'K', '0', '2'};
constexpr char kRowsMagic[8] = {'Z', 'O', 'T', 'R', 'O', 'W', '0', '2'};
constexpr const char* kFormat = "zotune-disk-v2";
// Elements converted per write when creating a rows file: bounds the RAM and
// the checkpoint pages a 150k-token embedding occupies while it is copied.
constexpr int64_t kLoadChunk = int64_t{1} << 20;

struct UnitHeader {
  char magic[8];
  int64_t index;  // block, or tensor id of a rows file
  int64_t numel;
  int64_t updates;
  char dtype[8];  // "F32", "BF16", "F16"
};

uint64_t page_floor(uint64_t b) { return b / kPage * kPage; }
uint64_t page_ceil(uint64_t b) { return (b + kPage - 1) / kPage * kPage; }

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
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
int open_file(const fs::path& path, int flags, bool direct) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
  if (fd < 0 && errno == EINVAL && direct) fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  return fd;
}

void pread_all(int fd, void* buf, uint64_t n, uint64_t off, const fs::path& path) {
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
int pwrite_all(int fd, const void* buf, uint64_t n, uint64_t off) {
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

fs::path tmp_of(const fs::path& p) {
  fs::path t = p;
  t += ".tmp";
  return t;
}

// Our own I/O errors remove the temp file they leave; anything else (a test's
// simulated crash) leaves it, as a kill would.
bool is_io_error(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error&) {
    return true;
  } catch (...) {
    return false;
  }
}

[[noreturn]] void write_failed(const fs::path& path, const char* what, int e) {
  const fs::path tmp = tmp_of(path);
  ::unlink(tmp.c_str());
  fail(tmp.string(), ": ", what, " failed: ", errno_text(e), " (the previous state in ", path.filename().string(),
       " is intact)");
}

// A complete temp file replaces `path`: fdatasync, close, rename. `before_rename`
// is the fault hook's last say (an errno to simulate, or 0).
void commit_tmp(Fd& f, const fs::path& path, const fs::path& tmp, const std::function<int()>& before_rename) {
  if (::fdatasync(f.fd) != 0) write_failed(path, "fdatasync", errno);
  // Clean pages after fdatasync: dropping them keeps the page cache out of the figures.
  ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
  if (::close(std::exchange(f.fd, -1)) != 0) write_failed(path, "close", errno);
  if (int e = before_rename()) write_failed(path, "rename", e);
  if (::rename(tmp.c_str(), path.c_str()) != 0) write_failed(path, "rename", errno);
}

}  // namespace

uint8_t* PageBuffer::ensure(std::size_t bytes) {
  if (bytes <= cap_ && p_) return p_;
  release();
  const std::size_t n = std::max<std::size_t>(page_ceil(bytes), kPage);
  p_ = static_cast<uint8_t*>(std::aligned_alloc(kPage, n));
  if (!p_) throw std::bad_alloc();
  cap_ = n;
  return p_;
}

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

void DiskStore::create_rows_file(int id, const Checkpoint& ckpt) {
  const auto t0 = std::chrono::steady_clock::now();
  const int u = rows_unit(id);
  const fs::path path = unit_path(u), tmp = tmp_of(path);
  const TensorView v = checked_view(arch_, ckpt, arch_.tensors()[static_cast<std::size_t>(id)]);
  const int64_t n = v.numel();
  if (int e = inject(DiskIoPoint::WriteTmp, u)) write_failed(path, "write", e);
  {
    Fd f{open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC, opt_.direct_io)};
    if (f.fd < 0) write_failed(path, "create", errno);
    uint8_t* page = header_page_.ensure(kPage);
    fill_header(page, u, opt_.initial_updates);
    if (int e = pwrite_all(f.fd, page, kPage, 0)) write_failed(path, "write", e);
    uint8_t* buf = stages_[0]->buf.ensure(static_cast<uint64_t>(std::min(n, kLoadChunk)) * elem_);
    AlignedBuffer<float> scratch;
    for (int64_t b = 0; b < n; b += kLoadChunk) {
      const int64_t m = std::min(kLoadChunk, n - b);
      codec_.encode(v, b, m, buf, scratch);
      drop_mapped_pages(static_cast<const uint8_t*>(v.data) + static_cast<std::size_t>(b) * dtype_size(v.dtype),
                        static_cast<std::size_t>(m) * dtype_size(v.dtype));
      const uint64_t bytes = static_cast<uint64_t>(m) * elem_;
      std::memset(buf + bytes, 0, page_ceil(bytes) - bytes);  // only the last slice is not whole pages
      if (int e = pwrite_all(f.fd, buf, page_ceil(bytes), kPage + static_cast<uint64_t>(b) * elem_))
        write_failed(path, "write", e);
    }
    if (::fdatasync(f.fd) != 0) write_failed(path, "fdatasync", errno);
    ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
    if (::close(std::exchange(f.fd, -1)) != 0) write_failed(path, "close", errno);
  }
  if (int e = inject(DiskIoPoint::BeforeRename, u)) write_failed(path, "rename", e);
  if (::rename(tmp.c_str(), path.c_str()) != 0) write_failed(path, "rename", errno);
  std::lock_guard lk(mu_);
  io_totals_.written += unit_file_bytes(u);
  io_totals_.write_s += seconds_since(t0);
}

std::unique_ptr<DiskStore> DiskStore::open_existing(const Architecture& arch, DiskStoreOptions opt) {
  std::unique_ptr<DiskStore> s(new DiskStore(arch, std::move(opt), true));
  s->load_manifest();
  for (int u = 0; u < s->num_units(); ++u) s->updates_[static_cast<std::size_t>(u)] = s->read_header(u);
  if (s->opt_.overlap) s->io_ = std::thread([p = s.get()] { p->io_loop(); });
  return s;
}

bool DiskStore::has_working_copy(const fs::path& work_dir) {
  std::error_code ec;
  return fs::is_regular_file(work_dir / kManifest, ec);
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

// ---- units, manifest and headers

int DiskStore::rows_unit(int tensor_id) const {
  const auto it = std::find(rows_ids_.begin(), rows_ids_.end(), tensor_id);
  check(it != rows_ids_.end(), "disk tier: tensor ", arch_.tensors()[static_cast<std::size_t>(tensor_id)].name,
        " is not streamed");
  return arch_.num_blocks() + static_cast<int>(it - rows_ids_.begin());
}

int64_t DiskStore::unit_numel(int unit) const {
  const int N = arch_.num_blocks();
  if (unit < N) return block_numel(unit);
  return arch_.tensors()[static_cast<std::size_t>(rows_ids_[static_cast<std::size_t>(unit - N)])].numel();
}

uint64_t DiskStore::unit_file_bytes(int unit) const {
  return kPage + page_ceil(static_cast<uint64_t>(unit_numel(unit)) * elem_);
}

fs::path DiskStore::unit_path(int unit) const {
  const int N = arch_.num_blocks();
  char name[32];
  if (unit < N) std::snprintf(name, sizeof name, "block-%05d.bin", unit);
  else std::snprintf(name, sizeof name, "rows-%05d.bin", rows_ids_[static_cast<std::size_t>(unit - N)]);
  return opt_.work_dir / name;
}

void DiskStore::fill_header(uint8_t* page, int unit, int64_t updates) const {
  const int N = arch_.num_blocks();
  UnitHeader h{};
  std::memcpy(h.magic, unit < N ? kBlockMagic : kRowsMagic, sizeof h.magic);
  h.index = unit < N ? unit : rows_ids_[static_cast<std::size_t>(unit - N)];
  h.numel = unit_numel(unit);
  h.updates = updates;
  const std::string_view name = dtype_name(opt_.storage_dtype);
  std::memcpy(h.dtype, name.data(), std::min(name.size(), sizeof h.dtype));
  std::memset(page, 0, kPage);
  std::memcpy(page, &h, sizeof h);
}

void DiskStore::check_header(const uint8_t* page, int unit, int64_t expect_updates, const fs::path& path) const {
  UnitHeader want{}, h{};
  std::vector<uint8_t> tmp(kPage);
  fill_header(tmp.data(), unit, 0);
  std::memcpy(&want, tmp.data(), sizeof want);
  std::memcpy(&h, page, sizeof h);
  check(std::memcmp(h.magic, want.magic, sizeof h.magic) == 0 && h.index == want.index && h.numel == want.numel,
        path.string(), ": not ", unit < arch_.num_blocks() ? "block " : "tensor ", want.index,
        " of this model (bad header)");
  check(std::memcmp(h.dtype, want.dtype, sizeof h.dtype) == 0, path.string(), ": the file stores ",
        std::string(h.dtype, strnlen(h.dtype, sizeof h.dtype)), " weights, this store ", dtype_name(opt_.storage_dtype));
  check(h.updates >= 0, path.string(), ": bad update count ", h.updates);
  check(expect_updates < 0 || h.updates == expect_updates, path.string(), ": file holds ", h.updates,
        " updates, the store expected ", expect_updates, " (was the working copy changed by another process?)");
}

void DiskStore::write_manifest() {
  const auto& table = arch_.tensors();
  Json m;
  m["format"] = kFormat;
  m["model_type"] = arch_.config().model_type;
  m["dtype"] = std::string(dtype_name(opt_.storage_dtype));
  Json blocks = Json::array();
  for (int b = 0; b < arch_.num_blocks(); ++b) {
    Json jb;
    jb["file"] = unit_path(b).filename().string();
    jb["numel"] = block_numel(b);
    jb["updates"] = updates_[static_cast<std::size_t>(b)];
    Json ts = Json::array();
    for (int id : block_tensors_[static_cast<std::size_t>(b)]) {
      const auto& spec = table[static_cast<std::size_t>(id)];
      ts.push_back({{"name", spec.name}, {"shape", spec.shape}, {"offset", tensor_offset_[static_cast<std::size_t>(id)]}});
    }
    jb["tensors"] = std::move(ts);
    blocks.push_back(std::move(jb));
  }
  m["blocks"] = std::move(blocks);
  Json rows = Json::array();
  for (std::size_t i = 0; i < rows_ids_.size(); ++i) {
    const int u = arch_.num_blocks() + static_cast<int>(i);
    const auto& spec = table[static_cast<std::size_t>(rows_ids_[i])];
    rows.push_back({{"file", unit_path(u).filename().string()},
                    {"name", spec.name},
                    {"shape", spec.shape},
                    {"updates", updates_[static_cast<std::size_t>(u)]}});
  }
  m["rows"] = std::move(rows);
  write_file_atomic(opt_.work_dir / kManifest, m.dump(1) + "\n");
}

void DiskStore::load_manifest() {
  const fs::path path = opt_.work_dir / kManifest;
  check(has_working_copy(opt_.work_dir), path.string(), ": no working copy of the disk tier here (missing manifest)");
  Json m = read_json_file(path);
  auto field = [&](const Json& j, const char* key) -> const Json& {
    check(j.is_object() && j.contains(key), path.string(), ": missing field '", key, "'");
    return j[key];
  };
  check(field(m, "format") == kFormat, path.string(), ": field 'format' is not ", kFormat,
        " (a working copy of another zotune version; start the run again)");
  check(field(m, "model_type") == arch_.config().model_type, path.string(), ": the working copy holds a ",
        field(m, "model_type").dump(), " model, not ", arch_.config().model_type);
  check(field(m, "dtype") == dtype_name(opt_.storage_dtype), path.string(), ": the working copy stores ",
        field(m, "dtype").dump(), " weights, not ", dtype_name(opt_.storage_dtype), " (--storage-dtype)");
  const Json& blocks = field(m, "blocks");
  check(blocks.is_array() && blocks.size() == static_cast<std::size_t>(arch_.num_blocks()), path.string(),
        ": field 'blocks' must list ", arch_.num_blocks(), " blocks");
  const auto& table = arch_.tensors();
  for (int b = 0; b < arch_.num_blocks(); ++b) {
    const Json& jb = blocks[static_cast<std::size_t>(b)];
    check(field(jb, "numel") == block_numel(b), path.string(), ": block ", b, " has another size than this model's");
    const Json& ts = field(jb, "tensors");
    const auto& ids = block_tensors_[static_cast<std::size_t>(b)];
    check(ts.is_array() && ts.size() == ids.size(), path.string(), ": block ", b, " lists other tensors than this model's");
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const auto& spec = table[static_cast<std::size_t>(ids[i])];
      check(field(ts[i], "name") == spec.name && field(ts[i], "shape") == Json(spec.shape), path.string(), ": block ", b,
            " tensor ", i, " is not '", spec.name, "' with this model's shape");
    }
  }
  const Json& rows = field(m, "rows");
  check(rows.is_array() && rows.size() == rows_ids_.size(), path.string(), ": field 'rows' must list ",
        rows_ids_.size(), " streamed tensors");
  for (std::size_t i = 0; i < rows_ids_.size(); ++i) {
    const auto& spec = table[static_cast<std::size_t>(rows_ids_[i])];
    check(field(rows[i], "name") == spec.name && field(rows[i], "shape") == Json(spec.shape), path.string(),
          ": rows file ", i, " is not '", spec.name, "' with this model's shape");
  }
}

int64_t DiskStore::read_header(int unit) const {
  const fs::path path = unit_path(unit);
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  check(f.fd >= 0, path.string(), ": cannot open: ", errno_text(errno));
  struct stat st {};
  check(::fstat(f.fd, &st) == 0, path.string(), ": stat failed: ", errno_text(errno));
  const uint64_t want = unit_file_bytes(unit);
  check(static_cast<uint64_t>(st.st_size) == want, path.string(), ": file has ", st.st_size, " bytes, expected ", want,
        " (truncated or corrupt)");
  std::vector<uint8_t> page(kPage);
  pread_all(f.fd, page.data(), kPage, 0, path);
  check_header(page.data(), unit, -1, path);
  UnitHeader h{};
  std::memcpy(&h, page.data(), sizeof h);
  return h.updates;
}

// ---- block I/O

int DiskStore::inject(DiskIoPoint p, int unit) const { return opt_.fault ? opt_.fault(p, unit_path(unit)) : 0; }

void DiskStore::read_block(Stage& s) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path path = unit_path(s.block);
  const uint64_t bytes = unit_file_bytes(s.block);
  uint8_t* buf = s.buf.ensure(bytes);
  if (int e = inject(DiskIoPoint::Read, s.block)) fail(path.string(), ": read failed: ", errno_text(e));
  Fd f{open_file(path, O_RDONLY, opt_.direct_io)};
  check(f.fd >= 0, path.string(), ": cannot open block file: ", errno_text(errno));
  pread_all(f.fd, buf, bytes, 0, path);
  ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
  check_header(buf, s.block, s.updates, path);
  std::lock_guard lk(mu_);
  io_totals_.read += bytes;
  io_totals_.read_s += seconds_since(t0);
}

void DiskStore::write_block(Stage& s, int64_t updates) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path path = unit_path(s.block), tmp = tmp_of(path);
  const uint64_t bytes = unit_file_bytes(s.block);
  fill_header(s.buf.data(), s.block, updates);
  // A simulated crash (the hook throws) leaves the temp file behind, as a kill would.
  if (int e = inject(DiskIoPoint::WriteTmp, s.block)) write_failed(path, "write", e);
  {
    Fd f{open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC, opt_.direct_io)};
    if (f.fd < 0) write_failed(path, "create", errno);
    if (int e = pwrite_all(f.fd, s.buf.data(), bytes, 0)) write_failed(path, "write", e);
    commit_tmp(f, path, tmp, [&] { return inject(DiskIoPoint::BeforeRename, s.block); });
  }
  std::lock_guard lk(mu_);
  io_totals_.written += bytes;
  io_totals_.write_s += seconds_since(t0);
}

// ---- streamed-tensor I/O

void DiskStore::run_io(IoRequest& r) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path path = unit_path(r.unit);
  if (r.write) {
    if (int e = inject(DiskIoPoint::WriteChunk, r.unit)) write_failed(path, "write", e);
    if (int e = pwrite_all(r.fd, r.buf, r.bytes, r.off)) write_failed(path, "write", e);
  } else {
    pread_all(r.fd, r.buf, r.bytes, r.off, path);
  }
  std::lock_guard lk(mu_);
  (r.write ? io_totals_.written : io_totals_.read) += r.bytes;
  (r.write ? io_totals_.write_s : io_totals_.read_s) += seconds_since(t0);
}

void DiskStore::finish_rows(RowsWrite& w) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path path = unit_path(w.unit), tmp = tmp_of(path);
  Fd f{std::exchange(w.fd, -1)};
  if (w.error) {  // a chunk failed on the I/O thread: the old file stays
    if (is_io_error(w.error)) ::unlink(tmp.c_str());
    std::rethrow_exception(std::exchange(w.error, nullptr));
  }
  commit_tmp(f, path, tmp, [&] { return inject(DiskIoPoint::BeforeRename, w.unit); });
  std::lock_guard lk(mu_);
  io_totals_.write_s += seconds_since(t0);
}

DiskStore::IoRequest DiskStore::io_request(bool write, int fd, int unit, uint8_t* buf, uint64_t off, uint64_t bytes,
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

void DiskStore::submit(IoRequest& r) {
  if (!opt_.overlap) {
    run_io(r);
    return;
  }
  std::lock_guard lk(mu_);
  r.pending = true;
  r.error = nullptr;
  queue_.push_back({TaskKind::Io, nullptr, &r, nullptr});
  cv_.notify_all();
}

void DiskStore::await(IoRequest& r) {
  if (!opt_.overlap) return;
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !r.pending; });
  counters_.io_wait_seconds += seconds_since(t0);
  if (r.error) std::rethrow_exception(std::exchange(r.error, nullptr));
}

void DiskStore::await_rows_write(int unit) {
  RowsWrite& w = *rows_writes_[static_cast<std::size_t>(unit - arch_.num_blocks())];
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !w.finishing; });
  rethrow_io_error();
}

void DiskStore::stream_unit(int id, const BlockWork& work, int64_t chunk_rows, const RowChunkFn& fn) {
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(id)];
  const int u = rows_unit(id);
  const auto ui = static_cast<std::size_t>(u);
  RowsWrite& rw = *rows_writes_[ui - static_cast<std::size_t>(arch_.num_blocks())];
  await_rows_write(u);  // the previous rewrite of this file is in place
  {
    // Buffers of an earlier stream may still be in flight (their errors went to that stream's file).
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] {
      return !header_io_.pending && std::none_of(std::begin(chunks_), std::end(chunks_), [](const ChunkBuf& c) { return c.io.pending; });
    });
    header_io_.error = nullptr;
    for (auto& c : chunks_) c.io.error = nullptr;
  }
  const fs::path path = unit_path(u);
  const int64_t rows = spec.shape[0], cols = spec.numel() / rows;
  const int64_t cap = std::min(chunk_rows, rows) * cols;
  for (auto& c : chunks_) c.buf.ensure(static_cast<uint64_t>(cap) * elem_ + 2 * kPage);
  float* ct = codec_.lowbit() ? blocks::ensure(chunk_theta_, cap) : nullptr;
  float* cp = work.perturb ? blocks::ensure(chunk_plus_, cap) : nullptr;
  float* cm = work.perturb && !work.one_sided ? blocks::ensure(chunk_minus_, cap) : nullptr;
  const int64_t nchunks = (rows + chunk_rows - 1) / chunk_rows;
  const bool writing = work.update.has_value();
  auto byte_range = [&](int64_t k) {
    const int64_t r0 = k * chunk_rows, nr = std::min(chunk_rows, rows - r0);
    return std::pair<uint64_t, uint64_t>{static_cast<uint64_t>(r0 * cols) * elem_,
                                         static_cast<uint64_t>((r0 + nr) * cols) * elem_};
  };

  Fd in;
  try {
    if (int e = inject(DiskIoPoint::Read, u)) fail(path.string(), ": read failed: ", errno_text(e));
    in.fd = open_file(path, O_RDONLY, opt_.direct_io);
    check(in.fd >= 0, path.string(), ": cannot open rows file: ", errno_text(errno));
    uint8_t* page = header_page_.ensure(kPage);
    {
      const auto t0 = std::chrono::steady_clock::now();
      pread_all(in.fd, page, kPage, 0, path);
      check_header(page, u, updates_[ui], path);
      std::lock_guard lk(mu_);
      io_totals_.read += kPage;
      io_totals_.read_s += seconds_since(t0);
    }
    if (writing) {
      if (int e = inject(DiskIoPoint::WriteTmp, u)) write_failed(path, "write", e);
      rw.fd = open_file(tmp_of(path), O_WRONLY | O_CREAT | O_TRUNC, opt_.direct_io);
      if (rw.fd < 0) write_failed(path, "create", errno);
      rw.error = nullptr;
      fill_header(page, u, updates_[ui] + 1);
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
      if (k + 1 < nchunks) {
        await(chunks_[(k + 1) % 3].io);  // the write of chunk k - 2 left that buffer
        read_chunk(k + 1);
      }
      const auto [b0, b1] = byte_range(k);
      const uint64_t p0 = page_floor(b0);
      uint8_t* data = c.buf.data() + (b0 - p0);
      const int64_t r0 = k * chunk_rows, nr = std::min(chunk_rows, rows - r0), e0 = r0 * cols, n = nr * cols;
      count_draws(zo_apply(work, slice(id, data, e0, n), cp, cm, ct));
      const float* theta = ct ? ct : reinterpret_cast<const float*>(data);  // fp32: θ is the staged chunk
      if (fn) fn(RowChunk{r0, nr, cols, theta, cp ? cp : theta, cm ? cm : theta});
      if (!writing) continue;
      // The page this chunk starts in begins with the previous chunk's updated
      // bytes (this buffer read them before the update); its own partial last
      // page goes on to the next chunk.
      std::memcpy(c.buf.data(), carry_.data(), b0 - p0);
      const bool last = k + 1 == nchunks;
      const uint64_t end = last ? page_ceil(b1) : page_floor(b1);
      if (last) std::memset(c.buf.data() + (b1 - p0), 0, page_ceil(b1) - b1);
      else std::memcpy(carry_.data(), c.buf.data() + (page_floor(b1) - p0), b1 - page_floor(b1));
      if (end > p0) {
        c.io = io_request(true, rw.fd, u, c.buf.data(), kPage + p0, end - p0, &rw);
        submit(c.io);
      }
    }
    if (writing) {
      ++updates_[ui];
      if (opt_.overlap) {
        std::lock_guard lk(mu_);
        rw.finishing = true;
        queue_.push_back({TaskKind::FinishRows, nullptr, nullptr, &rw});
        cv_.notify_all();
      } else {
        finish_rows(rw);
      }
    }
  } catch (...) {
    const std::exception_ptr err = std::current_exception();
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] {
        return !header_io_.pending && std::none_of(std::begin(chunks_), std::end(chunks_), [](const ChunkBuf& c) { return c.io.pending; });
      });
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
  // Lean: one fp32 copy per resident block, copy 0 now and copy 1 from the
  // staged values, which stay held until then. (fp32 one-sided needs no second
  // pass: its copy 1 is the staged θ.)
  const bool lean = work.perturb && (lowbit || !work.one_sided);
  Slot* slot = lowbit || work.perturb ? &slot_for(block) : nullptr;  // 16-bit: fp32 copies always
  for (int id : block_tensors_[bi]) {
    const auto ii = static_cast<std::size_t>(id);
    const int64_t off = tensor_offset_[ii];
    void* stored = payload + static_cast<uint64_t>(off) * elem_;
    float* w = slot ? slot->w.data() + off : nullptr;
    count_draws(zo_apply(work, slice(id, stored), w, nullptr, nullptr));
    const float* theta = lowbit ? w : static_cast<const float*>(stored);
    plus_[ii] = work.perturb ? w : theta;
    minus_[ii] = lean ? nullptr : theta;
  }
  // fp32: the copies point into the stage when unperturbed, copy 1 when
  // one-sided; lean keeps it for copy 1.
  st->holds_pointers = lean || !lowbit;
  lean_block_ = lean ? block : -1;
  lean_made_ = 0;
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
  if (lean_made_ == 0 && k == 1) check(st != nullptr && slot_of_[bi] != nullptr, "disk tier: block ", block, " is not resident");
  uint8_t* payload = st ? st->buf.data() + kPage : nullptr;
  const ParamPtrs p = lean_copy(block, k, lean_made_, lean_work_, plus_, [&](int id) -> void* {
    return payload + static_cast<uint64_t>(tensor_offset_[static_cast<std::size_t>(id)]) * elem_;
  }, false);
  if (lean_made_ == 1 && st) {
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
