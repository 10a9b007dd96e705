// The disk tier's file format: which units a store's tensors form (blocks
// 0 .. N-1, then one rows file per streamed tensor), their paths, sizes and
// element offsets, the 4096-byte unit header (fill, check, checksum), the
// manifest, and checking a working copy on disk. Owns no thread and no buffer
// that outlives a call, and knows nothing of the update rule.
//
// Layout of work_dir (one "unit" per file; E = bytes per stored element):
//   block-00012.bin     4096-byte header (magic "ZOTBLK02", block, numel,
//                       updates applied, dtype, payload checksum) then the
//                       block's non-streamed tensors in table order, E bytes
//                       each, padded to 4096 bytes (so O_DIRECT stays possible)
//   rows-00000.bin      a streamed tensor (token embedding, untied lm_head;
//                       named by tensor id): the same header (magic
//                       "ZOTROW02", tensor id, ...) and the tensor's rows
//   disk-manifest.json  format, model type, dtype, per block: file, numel,
//                       tensors (name, shape, offset); per rows file: file,
//                       name, shape; and the updates each unit held when the
//                       manifest was last written. Written after every file
//                       exists, so its presence means "complete"
// The header, not the manifest, is authoritative for a unit's update count.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "model/architecture.h"

namespace zotune {

class ParamStore;

class DiskLayout {
 public:
  static constexpr const char* kManifest = "disk-manifest.json";
  // True if `work_dir` holds a complete working copy (manifest present).
  static bool has_working_copy(const std::filesystem::path& work_dir);

  // The units of `store`'s tensors (its blocks, streamed tensors and codec) in `work_dir`.
  DiskLayout(const ParamStore& store, std::filesystem::path work_dir);

  const std::filesystem::path& work_dir() const { return work_dir_; }
  int num_blocks() const { return num_blocks_; }
  // Units: blocks 0 .. N-1, then one rows file per streamed tensor (ascending id).
  int num_units() const { return num_blocks_ + static_cast<int>(rows_ids_.size()); }
  int rows_unit(int tensor_id) const;
  std::filesystem::path unit_path(int unit) const;
  int64_t unit_numel(int unit) const;
  // Header page + payload padded to whole pages.
  uint64_t unit_file_bytes(int unit) const;
  // Offset (elements) of a non-streamed tensor inside its block's payload.
  int64_t tensor_offset(int id) const { return tensor_offset_[static_cast<std::size_t>(id)]; }
  std::size_t elem() const { return elem_; }  // bytes per stored element

  // A fresh directory for a new working copy: created, its manifest removed
  // (a crash while the model streams in leaves nothing that looks complete).
  void prepare_new() const;
  // `hash`: the payload's checksum (null: none yet, a rows file being streamed).
  void fill_header(uint8_t* page, int unit, int64_t updates, const uint64_t* hash = nullptr) const;
  // Throws naming `path` unless `page` is unit's header (expect_updates < 0: any count).
  void check_header(const uint8_t* page, int unit, int64_t expect_updates, const std::filesystem::path& path) const;
  // The checksum a header page records, if any.
  static std::optional<uint64_t> header_hash(const uint8_t* page);
  [[noreturn]] void checksum_mismatch(int unit, uint64_t want, uint64_t got) const;

  // The manifest, with each unit's update count.
  void write_manifest(const std::vector<int64_t>& updates) const;
  // The working copy on disk (resume): checks the manifest against this model
  // and storage dtype, then reads every unit's file whole (size, header,
  // checksum) and returns the updates each holds. Throws naming the file.
  std::vector<int64_t> open_existing() const;

 private:
  void load_manifest() const;
  int64_t read_header(int unit) const;
  // Reads unit u's file whole and checks its payload against its header's checksum.
  void verify_unit(int unit) const;

  const Architecture& arch_;
  std::vector<std::vector<int>> block_tensors_;  // non-streamed tensors of each block (the store's)
  std::filesystem::path work_dir_;
  DType dtype_;
  std::size_t elem_;
  int num_blocks_;
  std::vector<int64_t> block_numel_;
  std::vector<int64_t> tensor_offset_;  // by tensor id
  std::vector<int> rows_ids_;           // streamed tensor of each rows unit
};

}  // namespace zotune
