// The disk tier's file format: units, their paths and sizes, the 4096-byte
// unit header, the manifest, and writing a streamed tensor's rows file from
// the checkpoint (layout in disk_store.h).
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
    Hasher hash;
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
      hash.update(buf, page_ceil(bytes));
    }
    const uint64_t h = hash.digest();
    fill_header(page, u, opt_.initial_updates, &h);
    if (int e = pwrite_all(f.fd, page, kPage, 0)) write_failed(path, "write", e);
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
  for (int u = 0; u < s->num_units(); ++u) {
    s->updates_[static_cast<std::size_t>(u)] = s->read_header(u);
    s->verify_unit(u);
  }
  if (s->opt_.overlap) s->io_ = std::thread([p = s.get()] { p->io_loop(); });
  return s;
}

bool DiskStore::has_working_copy(const fs::path& work_dir) {
  std::error_code ec;
  return fs::is_regular_file(work_dir / kManifest, ec);
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

void DiskStore::fill_header(uint8_t* page, int unit, int64_t updates, const uint64_t* hash) const {
  const int N = arch_.num_blocks();
  UnitHeader h{};
  std::memcpy(h.magic, unit < N ? kBlockMagic : kRowsMagic, sizeof h.magic);
  h.index = unit < N ? unit : rows_ids_[static_cast<std::size_t>(unit - N)];
  h.numel = unit_numel(unit);
  h.updates = updates;
  const std::string_view name = dtype_name(opt_.storage_dtype);
  std::memcpy(h.dtype, name.data(), std::min(name.size(), sizeof h.dtype));
  if (hash) {
    h.payload_hash = *hash;
    h.hash_kind = kHashXxh3;
  }
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

std::optional<uint64_t> DiskStore::header_hash(const uint8_t* page) {
  UnitHeader h{};
  std::memcpy(&h, page, sizeof h);
  if (h.hash_kind != kHashXxh3) return std::nullopt;
  return h.payload_hash;
}

void DiskStore::checksum_mismatch(int unit, uint64_t want, uint64_t got) const {
  fail(unit_path(unit).string(), ": checksum mismatch (the header records ", hash_hex(want), ", the bytes hash to ",
       hash_hex(got), "): the file changed after zotune wrote it (disk corruption or another program)");
}

void DiskStore::verify_unit(int unit) const {
  const fs::path path = unit_path(unit);
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  check(f.fd >= 0, path.string(), ": cannot open: ", errno_text(errno));
  std::vector<uint8_t> page(kPage);
  pread_all(f.fd, page.data(), kPage, 0, path);
  const std::optional<uint64_t> want = header_hash(page.data());
  if (!want) return;  // written by a version without checksums
  const uint64_t total = unit_file_bytes(unit) - kPage;
  constexpr uint64_t kPiece = uint64_t{8} << 20;
  std::vector<uint8_t> buf(std::min(total, kPiece));
  Hasher h;
  for (uint64_t off = 0; off < total; off += kPiece) {
    const uint64_t n = std::min(kPiece, total - off);
    pread_all(f.fd, buf.data(), n, kPage + off, path);
    h.update(buf.data(), n);
  }
  ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
  if (h.digest() != *want) checksum_mismatch(unit, *want, h.digest());
}

}  // namespace zotune
