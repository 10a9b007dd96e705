// `zotune train`: the loop. Loads the starting weights (or resumes), the data
// (this rank's slice of each global batch), runs the ZO engine step by step,
// evaluates, logs, checkpoints and stops cleanly on SIGINT/SIGTERM. What it
// writes and where is train/run_dir.h's; --dry-run and --memory-budget are
// train/planner.h's.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "dist/comm.h"
#include "store/store_factory.h"
#include "tensor/dtype.h"
#include "zo/mezo.h"

namespace zotune {

struct TrainOptions {
  std::filesystem::path model, data, eval, out, resume;
  int64_t steps = 100;
  int64_t batch_size = 8;       // the global batch: rank r of W trains on its slice of batch_size / W
  int64_t eval_batch_size = 0;  // 0 = batch_size
  int64_t max_length = 256;
  int64_t eval_every = 0;       // 0 = only before the first and after the last step
  int64_t save_every = 0;       // 0 = only at the end (and on SIGINT/SIGTERM)
  int64_t keep_checkpoints = 2;
  int64_t max_eval_examples = 0;  // 0 = all
  uint64_t seed = 0;
  MezoOptions mezo;
  std::string task;             // a MeZO task name: data lines are its raw records
  std::optional<DType> save_dtype;
  int threads = 0;
  // Ranks per data slice (--pert-parallel): 2 splits each step's two passes
  // over a pair of ranks (rank = 2·data_rank + half); the Comm's world is
  // data-parallel ranks × this.
  int pert_parallel = 1;
  int progress = -1;            // -1 auto (a terminal), 0 plain log lines, 1 bar
  StoreOptions store;           // tier: --offload, --storage-dtype, --resident-blocks, --overlap
  uint64_t memory_budget = 0;   // bytes; > 0 picks the tier and resident blocks (--memory-budget)
  bool dry_run = false;         // print the memory plan and the time estimate, train nothing
};

// Runs training as one rank of `comm`; returns the process exit code: 0 when
// all steps are done, 130 / 143 when stopped by SIGINT / SIGTERM after writing
// a checkpoint.
int run_training(const TrainOptions& options, Comm& comm);

// Rebuilds fine-tuned weights from a base model and an update log.
void replay_updates(const std::filesystem::path& base_model, const std::filesystem::path& log,
                    const std::filesystem::path& out, std::optional<int64_t> steps, std::optional<DType> save_dtype);

}  // namespace zotune
