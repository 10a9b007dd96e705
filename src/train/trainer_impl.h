// The state of one training run and the pieces that share it (internal to
// src/train): trainer.cpp owns the starting weights (fresh or resumed), the
// data and the step loop with its stop handling; trainer_report.cpp owns what
// the run writes while it goes: dev evaluation and model selection (best/),
// step records and the progress line, checkpoints and the final model.
// run_training (trainer.h) is the only entry.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/timer.h"
#include "data/dataset.h"
#include "data/eval.h"
#include "data/eval_protocol.h"
#include "data/loader.h"
#include "dist/comm.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "store/param_store.h"
#include "tokenizer/tokenizer.h"
#include "train/engine.h"
#include "train/run_dir.h"
#include "train/trainer.h"

namespace zotune {

// Seconds as hh:mm:ss ("--:--:--" when unknown).
std::string hms(double s);

class Trainer {
 public:
  // Under data parallelism every rank runs the same loop on its slice of each
  // batch; only rank 0 (lead_) writes the output directory and logs.
  Trainer(const TrainOptions& o, Comm& comm) : opt_(o), comm_(comm), lead_(comm.rank() == 0) {}
  int run();

 private:
  void load_starting_weights();
  void load_data();
  void evaluate(int64_t step);
  void log_step(const StepResult& r, double step_sec);
  void progress(int64_t step, bool final);
  void save_checkpoint_dir(int64_t step);
  // The output model; returns where the last step's model is, relative to --out.
  std::string save_final();
  void save_best(Json& rec, double value);
  // The signal that stops the run, agreed by every rank (the largest received).
  int agreed_signal(int mine);
  // Flushes the pending update; a reader of the stored weights (pieces, not copies).
  TensorReader flushed_weights();

  TrainOptions opt_;
  Comm& comm_;
  bool lead_;
  std::filesystem::path base_model_;
  std::unique_ptr<Architecture> arch_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<ParamStore> store_;
  std::unique_ptr<ZoEngine> engine_;
  std::optional<Tokenizer> tok_;
  std::unique_ptr<Dataset> train_, eval_;
  std::vector<EvalExample> dev_generation_;  // --data-dir, SQuAD/DROP: the dev set, scored by greedy decoding + F1
  std::unique_ptr<DataLoader> loader_;
  DType input_dtype_ = DType::F32;
  int64_t start_step_ = 0;
  std::vector<UpdateRecord> resumed_records_;
  std::unique_ptr<RunDir> dir_;
  std::optional<double> best_;  // --select-best: the best dev value so far (F1, accuracy, or -loss)
  int64_t best_step_ = -1;      // its step
  Stopwatch clock_;
  double tokens_since_start_ = 0;
  double last_log_time_ = -1e9;
  bool tty_ = false;
  StepResult last_{};
};

}  // namespace zotune
