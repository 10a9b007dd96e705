// `zotune train`: the loop. Loads the starting weights (or resumes), the data
// (this rank's slice of each global batch), runs the ZO engine step by step,
// evaluates (with --select-best: keeps the best dev evaluation's model in
// best/), logs, checkpoints and stops cleanly on SIGINT/SIGTERM. What it
// writes and where is train/run_dir.h's; --dry-run and --memory-budget are
// train/planner.h's.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "dist/comm.h"
#include "dist/layout.h"
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
  bool max_length_given = true; // false: 256 is a default, lowered to the model's position limit
  int64_t eval_every = 0;       // 0 = only before the first and after the last step
  int64_t save_every = 0;       // 0 = only at the end (and on SIGINT/SIGTERM)
  int64_t keep_checkpoints = 2;
  // Several ranks: compare a checksum of every rank's weights every K steps
  // (train/replica_check.h; 0: never).
  int64_t check_every = 100;
  int64_t max_eval_examples = 0;  // 0 = all
  uint64_t seed = 0;
  MezoOptions mezo;
  std::string task;             // a MeZO task name: data lines are its raw records
  // MeZO's protocol (--data-dir with --task): train and dev sets sampled from
  // the task's train split (data/task_files.h mezo_task_data), dev as the eval set.
  std::filesystem::path data_dir;
  int64_t num_train = 1000, num_dev = -1, num_test = 1000;  // num_dev -1: MeZO's default for the task
  // Export the weights of the best dev evaluation (highest F1 for SQuAD/DROP,
  // accuracy, else lowest loss) to <out>/best/ (Hugging Face layout); at the
  // end they become the output model and the last step's go to <out>/last/.
  bool select_best = false;
  std::optional<DType> save_dtype;
  int threads = 0;
  // How the Comm's ranks share each step (dist/layout.h): --data-parallel,
  // --pert-parallel, --direction-groups. Not part of the run's identity: a
  // run resumes under any layout.
  RankLayout layout;
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
