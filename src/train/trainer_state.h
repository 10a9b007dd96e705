// trainer_state.json: where a run (or one of its checkpoints) stands. Read by
// `train --resume`; every field is checked here, so resume code can trust it.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "io/json_file.h"

namespace zotune {

struct TrainerState {
  int64_t step = 0;          // updates applied (>= 0)
  bool finished = false;
  std::string base_model;    // the model the run started from
  std::string weights;       // "" (rebuild from base_model + log), "." or "checkpoint-N": a plain name in the run dir
  std::string updates;       // "" or a plain name in the run dir
  Json run = Json::object(); // the run identity (options that must match on resume)
  Json base_identity;        // model_identity of base_model (io/model_identity.h); null in older runs
};

// Errors name the file and field (a missing or mistyped field, a negative step,
// a weights/updates entry that leaves the run directory).
TrainerState parse_trainer_state(const Json& j, const std::string& file);
TrainerState read_trainer_state(const std::filesystem::path& file);

}  // namespace zotune
