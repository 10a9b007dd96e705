// The disk tier's file format (disk_layout.h): units, paths, sizes, the unit
// header, the manifest and checking a working copy on disk.
#include "store/disk_layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "base/error.h"
#include "base/fs.h"
#include "base/hash.h"
#include "io/json_file.h"
#include "store/disk_files.h"
#include "store/param_store.h"

namespace zotune {

using namespace disk;  // NOLINT: the tier's private helpers (disk_files.h)

DiskLayout::DiskLayout(const ParamStore& store, fs::path work_dir)
    : arch_(store.arch()),
      work_dir_(std::move(work_dir)),
      dtype_(store.storage_dtype()),
      elem_(store.codec().bytes()),
      num_blocks_(store.arch().num_blocks()),
      rows_ids_(store.streamed_ids()) {
  const auto& table = arch_.tensors();
  tensor_offset_.assign(table.size(), 0);
  for (int b = 0; b < num_blocks_; ++b) {
    block_tensors_.push_back(store.block_tensors(b));
    block_numel_.push_back(store.block_numel(b));
    int64_t off = 0;
    for (int id : block_tensors_.back()) {
      tensor_offset_[static_cast<std::size_t>(id)] = off;
      off += table[static_cast<std::size_t>(id)].numel();
    }
  }
}

bool DiskLayout::has_working_copy(const fs::path& work_dir) {
  std::error_code ec;
  return fs::is_regular_file(work_dir / kManifest, ec);
}

void DiskLayout::prepare_new() const {
  std::error_code ec;
  fs::create_directories(work_dir_, ec);
  check(!ec && fs::is_directory(work_dir_), work_dir_.string(),
        ": cannot create the disk tier's work directory: ", ec ? ec.message() : "not a directory");
  fs::remove(work_dir_ / kManifest, ec);
}

// ---- units

int DiskLayout::rows_unit(int tensor_id) const {
  const auto it = std::find(rows_ids_.begin(), rows_ids_.end(), tensor_id);
  check(it != rows_ids_.end(), "disk tier: tensor ", arch_.tensors()[static_cast<std::size_t>(tensor_id)].name,
        " is not streamed");
  return num_blocks_ + static_cast<int>(it - rows_ids_.begin());
}

int64_t DiskLayout::unit_numel(int unit) const {
  if (unit < num_blocks_) return block_numel_[static_cast<std::size_t>(unit)];
  return arch_.tensors()[static_cast<std::size_t>(rows_ids_[static_cast<std::size_t>(unit - num_blocks_)])].numel();
}

uint64_t DiskLayout::unit_file_bytes(int unit) const {
  return kPage + page_ceil(static_cast<uint64_t>(unit_numel(unit)) * elem_);
}

fs::path DiskLayout::unit_path(int unit) const {
  char name[32];
  if (unit < num_blocks_) std::snprintf(name, sizeof name, "block-%05d.bin", unit);
  else std::snprintf(name, sizeof name, "rows-%05d.bin", rows_ids_[static_cast<std::size_t>(unit - num_blocks_)]);
  return work_dir_ / name;
}

// ---- headers

void DiskLayout::fill_header(uint8_t* page, int unit, int64_t updates, const uint64_t* hash) const {
  const int N = num_blocks_;
  UnitHeader h{};
  std::memcpy(h.magic, unit < N ? kBlockMagic : kRowsMagic, sizeof h.magic);
  h.index = unit < N ? unit : rows_ids_[static_cast<std::size_t>(unit - N)];
  h.numel = unit_numel(unit);
  h.updates = updates;
  const std::string_view name = dtype_name(dtype_);
  std::memcpy(h.dtype, name.data(), std::min(name.size(), sizeof h.dtype));
  if (hash) {
    h.payload_hash = *hash;
    h.hash_kind = kHashXxh3;
  }
  std::memset(page, 0, kPage);
  std::memcpy(page, &h, sizeof h);
}

void DiskLayout::check_header(const uint8_t* page, int unit, int64_t expect_updates, const fs::path& path) const {
  UnitHeader want{}, h{};
  std::vector<uint8_t> tmp(kPage);
  fill_header(tmp.data(), unit, 0);
  std::memcpy(&want, tmp.data(), sizeof want);
  std::memcpy(&h, page, sizeof h);
  check(std::memcmp(h.magic, want.magic, sizeof h.magic) == 0 && h.index == want.index && h.numel == want.numel,
        path.string(), ": not ", unit < num_blocks_ ? "block " : "tensor ", want.index,
        " of this model (bad header)");
  check(std::memcmp(h.dtype, want.dtype, sizeof h.dtype) == 0, path.string(), ": the file stores ",
        std::string(h.dtype, strnlen(h.dtype, sizeof h.dtype)), " weights, this store ", dtype_name(dtype_));
  check(h.updates >= 0, path.string(), ": bad update count ", h.updates);
  check(expect_updates < 0 || h.updates == expect_updates, path.string(), ": file holds ", h.updates,
        " updates, the store expected ", expect_updates, " (was the working copy changed by another process?)");
}

std::optional<uint64_t> DiskLayout::header_hash(const uint8_t* page) {
  UnitHeader h{};
  std::memcpy(&h, page, sizeof h);
  if (h.hash_kind != kHashXxh3) return std::nullopt;
  return h.payload_hash;
}

void DiskLayout::checksum_mismatch(int unit, uint64_t want, uint64_t got) const {
  fail(unit_path(unit).string(), ": checksum mismatch (the header records ", hash_hex(want), ", the bytes hash to ",
       hash_hex(got), "): the file changed after zotune wrote it (disk corruption or another program)");
}

// ---- the manifest

void DiskLayout::write_manifest(const std::vector<int64_t>& updates) const {
  const auto& table = arch_.tensors();
  Json m;
  m["format"] = kFormat;
  m["model_type"] = arch_.config().model_type;
  m["dtype"] = std::string(dtype_name(dtype_));
  Json blocks = Json::array();
  for (int b = 0; b < num_blocks_; ++b) {
    Json jb;
    jb["file"] = unit_path(b).filename().string();
    jb["numel"] = block_numel_[static_cast<std::size_t>(b)];
    jb["updates"] = updates[static_cast<std::size_t>(b)];
    Json ts = Json::array();
    for (int id : block_tensors_[static_cast<std::size_t>(b)]) {
      const auto& spec = table[static_cast<std::size_t>(id)];
      ts.push_back({{"name", spec.name}, {"shape", spec.shape}, {"offset", tensor_offset(id)}});
    }
    jb["tensors"] = std::move(ts);
    blocks.push_back(std::move(jb));
  }
  m["blocks"] = std::move(blocks);
  Json rows = Json::array();
  for (std::size_t i = 0; i < rows_ids_.size(); ++i) {
    const int u = num_blocks_ + static_cast<int>(i);
    const auto& spec = table[static_cast<std::size_t>(rows_ids_[i])];
    rows.push_back({{"file", unit_path(u).filename().string()},
                    {"name", spec.name},
                    {"shape", spec.shape},
                    {"updates", updates[static_cast<std::size_t>(u)]}});
  }
  m["rows"] = std::move(rows);
  write_file_atomic(work_dir_ / kManifest, m.dump(1) + "\n");
}

void DiskLayout::load_manifest() const {
  const fs::path path = work_dir_ / kManifest;
  check(has_working_copy(work_dir_), path.string(), ": no working copy of the disk tier here (missing manifest)");
  Json m = read_json_file(path);
  auto field = [&](const Json& j, const char* key) -> const Json& {
    check(j.is_object() && j.contains(key), path.string(), ": missing field '", key, "'");
    return j[key];
  };
  check(field(m, "format") == kFormat, path.string(), ": field 'format' is not ", kFormat,
        " (a working copy of another zotune version; start the run again)");
  check(field(m, "model_type") == arch_.config().model_type, path.string(), ": the working copy holds a ",
        field(m, "model_type").dump(), " model, not ", arch_.config().model_type);
  check(field(m, "dtype") == dtype_name(dtype_), path.string(), ": the working copy stores ",
        field(m, "dtype").dump(), " weights, not ", dtype_name(dtype_), " (--storage-dtype)");
  const Json& blocks = field(m, "blocks");
  check(blocks.is_array() && blocks.size() == static_cast<std::size_t>(num_blocks_), path.string(),
        ": field 'blocks' must list ", num_blocks_, " blocks");
  const auto& table = arch_.tensors();
  for (int b = 0; b < num_blocks_; ++b) {
    const Json& jb = blocks[static_cast<std::size_t>(b)];
    check(field(jb, "numel") == block_numel_[static_cast<std::size_t>(b)], path.string(), ": block ", b,
          " has another size than this model's");
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

// ---- checking a working copy on disk

std::vector<int64_t> DiskLayout::open_existing() const {
  load_manifest();
  std::vector<int64_t> updates(static_cast<std::size_t>(num_units()));
  for (int u = 0; u < num_units(); ++u) {
    updates[static_cast<std::size_t>(u)] = read_header(u);
    verify_unit(u);
  }
  return updates;
}

int64_t DiskLayout::read_header(int unit) const {
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

void DiskLayout::verify_unit(int unit) const {
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
