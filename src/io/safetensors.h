// safetensors: zero-copy reading through mmap, validated against hostile files;
// atomic writing of files Hugging Face can load; sharded checkpoints through
// model.safetensors.index.json.
//
// Format: u64 little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data region; offsets are relative to the data region.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace zotune {

// Tells the kernel mapped checkpoint bytes are no longer needed: stores call it
// after copying a tensor out, so a loaded model is not resident twice. The
// mapping is read-only and file-backed, so only clean pages go (a later read
// faults them in again); widening to whole pages is harmless.
void drop_mapped_pages(const void* p, std::size_t bytes);
// Maps the pages of [p, p + bytes) in one call (MADV_POPULATE_READ) instead of
// one fault per page, before a pass that reads them all (the finite check).
void prefault_mapped_pages(const void* p, std::size_t bytes);

// Read-only RAII memory map of a whole file (MAP_PRIVATE). An empty file maps
// to data() == nullptr, size() == 0. Truncating the file while it is mapped
// makes later reads fault (SIGBUS); zotune never rewrites a file in place.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();
  const uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

struct TensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  // offsets into the data region
};

// One .safetensors file. The constructor validates the whole header: length
// within the file and at most 100 MB, valid JSON object, no tensor named twice,
// known dtype, non-negative integer dims whose product fits int64, shape x dtype
// size == byte range, ranges within the data region and not overlapping,
// __metadata__ a string->string map. Errors name the file and tensor. Gaps
// between ranges and zero-size tensors are allowed.
//
// Views are zero copy: pointers into the mapping, valid while this object
// lives. A hostile (or merely unpadded) file may place an F32 tensor at an
// address that is not 4-byte aligned; views expose it as is, so consumers that
// need aligned data (SIMD kernels, float* arithmetic) must copy it first.
// tensors() is in file order (ascending data offset).
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);
  const std::filesystem::path& path() const { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  TensorView view(const std::string& name) const;  // throws if missing
  TensorView view(const TensorInfo& t) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Offset of the data region in the file (for pread-based streaming).
  uint64_t data_offset() const { return data_offset_; }
  const MappedFile& mapping() const { return *file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
  uint64_t data_offset_ = 0;
};

// A model directory: model.safetensors.index.json + shards if the index exists,
// else model.safetensors, else the only *.safetensors file. With an index, each
// shard is mapped once, every weight_map entry must be in the shard it names,
// shard names must be plain file names (no '/' or '..'), and a tensor found in
// two shards is an error. Tensors in a shard but absent from weight_map are
// still served.
class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& dir);
  const std::filesystem::path& dir() const { return dir_; }
  bool has(const std::string& name) const;
  TensorView get(const std::string& name) const;  // throws "<dir>: missing tensor 'x'"
  const TensorInfo& info(const std::string& name) const;
  const std::filesystem::path& file_of(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted

 private:
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::size_t> where_;  // tensor -> files_ index
};

struct NamedTensor {
  using Fill = std::function<void(int64_t first, int64_t count, void* dst)>;
  NamedTensor(std::string n, TensorView v, Fill f = {}) : name(std::move(n)), view(v), fill(std::move(f)) {}
  std::string name;
  TensorView view;  // dtype/shape/data to write as-is
  // Instead of view.data (left null): the writer asks for the bytes a piece at
  // a time, fill(first, count, dst) writing elements [first, first + count) in
  // view.dtype to dst, so a tensor never has to exist whole in memory.
  Fill fill;
};

// Writes one .safetensors file atomically (temp + fsync + rename). Header is
// padded with spaces to a multiple of 8 bytes, data contiguous in the given
// order (so an odd-sized tensor before an F32 one leaves it unaligned: order
// by dtype size if that matters). Duplicate names are an error; an empty
// metadata map omits __metadata__.
void write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Writes a checkpoint into `dir` (created if needed): one model.safetensors if
// the tensors fit one shard of max_shard_bytes, else
// model-0000i-of-0000n.safetensors + model.safetensors.index.json, split and
// indexed the way huggingface_hub / transformers do it. Each file is atomic,
// the index is written last. Stale files from an earlier checkpoint in `dir`
// are NOT removed (an old index would shadow a new model.safetensors): callers
// write into a fresh directory or use replace_checkpoint (src/model/model.h).
// Returns the names of the files written, the index (if any) last.
std::vector<std::string> write_checkpoint(const std::filesystem::path& dir, const std::vector<NamedTensor>& tensors,
                      uint64_t max_shard_bytes = uint64_t{5} << 30);

}  // namespace zotune
