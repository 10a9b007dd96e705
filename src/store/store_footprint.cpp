#include "store/store_footprint.h"

#include <algorithm>
#include <vector>

#include "store/param_store.h"

namespace zotune {

namespace {

constexpr uint64_t kPage = 4096;

uint64_t f32_bytes(int64_t n) { return static_cast<uint64_t>(n) * sizeof(float); }

}  // namespace

StoreFootprint store_footprint(const Architecture& arch, const StoreOptions& so) {
  StoreFootprint f;
  // Block sizes as the stores see them: streamed tensors (the token embedding
  // and the lm_head) are not part of any block's working copy.
  std::vector<int> streamed;
  for (int id : {arch.token_embedding_id(), arch.head_weight_id()})
    if (id >= 0 && std::find(streamed.begin(), streamed.end(), id) == streamed.end()) streamed.push_back(id);
  std::vector<int64_t> block_numel(static_cast<std::size_t>(arch.num_blocks()), 0);
  int64_t params = 0;
  const auto& table = arch.tensors();
  for (std::size_t i = 0; i < table.size(); ++i) {
    params += table[i].numel();
    if (std::find(streamed.begin(), streamed.end(), static_cast<int>(i)) == streamed.end())
      block_numel[static_cast<std::size_t>(table[i].block)] += table[i].numel();
  }
  const int64_t max_block = *std::max_element(block_numel.begin(), block_numel.end());

  const bool disk = so.offload == Offload::Disk;
  const bool lowbit = so.offload != Offload::None && so.storage_dtype != DType::F32;
  const uint64_t dsize = lowbit ? dtype_size(so.storage_dtype) : 4;
  if (!disk) f.weights = static_cast<uint64_t>(params) * dsize;
  // fp32 RAM: W+ and W-; low-bit RAM: one lean copy; disk: one lean copy per resident block.
  const uint64_t block_f32 = f32_bytes(max_block);
  f.working = disk ? static_cast<uint64_t>(so.resident_blocks) * block_f32 : (lowbit ? 1 : 2) * block_f32;

  // stream_rows: W+ and W- of a head chunk; low-bit: the chunk's θ upcast; disk:
  // three I/O buffers in the storage dtype (read ahead, compute, write behind).
  const int64_t V = arch.config().vocab_size, Wd = arch.head_width();
  const auto& emb = table[static_cast<std::size_t>(arch.token_embedding_id())];
  const int64_t Ce = emb.numel() / emb.shape[0];
  const int64_t chunk_e = stream_chunk_rows(Ce, V) * Ce, chunk_h = stream_chunk_rows(Wd, V) * Wd;
  const int64_t chunk = std::max(chunk_e, chunk_h);
  f.stream_chunks = 2 * f32_bytes(chunk_h);
  if (lowbit) f.stream_chunks += f32_bytes(chunk);
  if (disk) f.stream_chunks += 3 * (static_cast<uint64_t>(chunk) * dsize + 2 * kPage);

  if (disk) {
    auto file_bytes = [&](int64_t numel) {
      return kPage + (static_cast<uint64_t>(numel) * dsize + kPage - 1) / kPage * kPage;
    };
    // Overlap keeps resident + 2 blocks staged (reading ahead, in use, writing
    // behind); without it one staged block is read, used and written in turn.
    const int stages = so.overlap ? so.resident_blocks + 2 : 1;
    f.staging = static_cast<uint64_t>(stages) * file_bytes(max_block);
    for (int64_t b : block_numel) f.disk_bytes += file_bytes(b);
    for (int id : streamed) f.disk_bytes += file_bytes(table[static_cast<std::size_t>(id)].numel());
    f.disk_read_bytes_per_step = f.disk_bytes;
    if (arch.head_weight_id() == arch.token_embedding_id()) f.disk_read_bytes_per_step += file_bytes(emb.numel());
  }
  return f;
}

}  // namespace zotune
