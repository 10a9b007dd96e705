// The identity of a model directory, recorded by `train` (trainer_state.json
// and the update log's header) and checked by `--resume` and `replay`: a run's
// update log only means something applied to the exact base model it started
// from. The identity is the directory's config.json and top-level weight files
// (*.safetensors, the shard index): their total size and an XXH3 hash of each
// file's name, size, first and last MiB (the safetensors header) and 32
// samples of 64 KiB spread over it — about 4 MB read whatever the model's
// size, so checking a 14 GB model costs milliseconds, and a replaced,
// re-exported, truncated or re-quantised model differs. (Bytes changed only
// between the samples go unnoticed; that is the price of not reading 14 GB.)
#pragma once
#include <filesystem>
#include <string>

#include "io/json_file.h"

namespace zotune {

// {"files": n, "bytes": total size, "sampled_xxh3": "16 hex digits"}.
Json model_identity(const std::filesystem::path& dir);

// `recorded` (a model_identity, from `where`) must equal `dir`'s; otherwise an
// error naming `option`, the directory, what differs and `where`. A null
// `recorded` (written before identities were recorded) is not checked.
void check_model_identity(const Json& recorded, const std::filesystem::path& dir, const std::string& option,
                          const std::string& where);

}  // namespace zotune
