// A model directory opened for inference: architecture from config.json,
// checkpoint (mmap), fp32 weights.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>

#include "io/safetensors.h"
#include "model/architecture.h"
#include "model/weights.h"

namespace zotune {

struct LoadedModel {
  std::unique_ptr<Architecture> arch;
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<ModelWeights> weights;
};

LoadedModel load_model(const std::filesystem::path& dir);

// Writes a random-initialised checkpoint (config.json + model.safetensors) into
// `out` (created; refuses to overwrite an existing config.json or weights). Matrices
// and embeddings ~ N(0, initializer_range) from Philox(seed, tensor id), biases 0,
// norm weights 1 — the HF _init_weights convention.
void init_checkpoint(Json config, DType dtype, uint64_t seed, const std::filesystem::path& out);

// Writes config.json + weights (converted from fp32 to `dtype`) into `out` atomically.
// `values[i]` is tensor i of arch.tensors(). Used by init, train and replay.
void save_checkpoint(const Architecture& arch, const std::vector<const float*>& values, DType dtype,
                     const std::filesystem::path& out);
// The same from a reader of fp32 elements: read(id, first, count, out) writes
// elements [first, first + count) of tensor id. Tensors are asked for in
// pieces (a few MB), so the weights are never all in memory at once — how the
// trainer exports from a tier that holds them on disk or in 16 bits.
using TensorReader = std::function<void(int id, int64_t first, int64_t count, float* out)>;
std::vector<std::string> save_checkpoint(const Architecture& arch, const TensorReader& read, DType dtype,
                                         const std::filesystem::path& out);

// A reader of a checkpoint's weights as fp32 (every tensor checked once by
// checked_view): saving it at the checkpoint's dtype writes the same bytes.
// `ckpt` must outlive the reader.
TensorReader checkpoint_reader(const Architecture& arch, const Checkpoint& ckpt);

// Throws naming the tensor and flat index when a value `read` gives is NaN or
// Inf; `what` says whose weights they are (e.g. "the replayed weights").
void check_weights_finite(const Architecture& arch, const TensorReader& read, const std::string& what);

// save_checkpoint over a model already in `out` (a finished run exported again):
// every new file is written under a temporary name and renamed over the old one,
// and only then are old weight files the new model does not use removed (the
// stale index first, so a reader never sees an index naming a missing shard).
// A failure (e.g. ENOSPC) leaves the previous model loadable.
void replace_checkpoint(const Architecture& arch, const TensorReader& read, DType dtype,
                        const std::filesystem::path& out);

}  // namespace zotune
