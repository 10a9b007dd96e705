#include "train/options_check.h"

#include <cmath>

#include "base/error.h"

namespace zotune {
namespace fs = std::filesystem;

namespace {
void non_negative(int64_t v, const char* flag) { check(v >= 0, flag, " must be >= 0 (got ", v, ")"); }

void input_file(const fs::path& p, const char* flag) {
  std::error_code ec;
  if (!fs::exists(p, ec)) fail(flag, " ", p.string(), ": no such file");
  if (fs::is_directory(p, ec)) fail(flag, " ", p.string(), " is a directory; give a JSONL file");
}
}  // namespace

void check_train_options(TrainOptions& o, const ModelConfig& model) {
  non_negative(o.steps, "--steps");
  check(o.batch_size > 0, "--batch-size must be > 0 (got ", o.batch_size, ")");
  non_negative(o.eval_batch_size, "--eval-batch-size");
  check(o.max_length >= 2, "--max-length must be >= 2 (got ", o.max_length, ")");
  non_negative(o.eval_every, "--eval-every");
  non_negative(o.save_every, "--save-every");
  non_negative(o.keep_checkpoints, "--keep-checkpoints");
  non_negative(o.max_eval_examples, "--max-eval-examples");
  non_negative(o.mezo.warmup_steps, "--warmup-steps");
  check(o.threads >= 0, "--threads must be >= 0 (got ", o.threads, ")");
  check(std::isfinite(o.mezo.lr) && o.mezo.lr >= 0, "--lr must be a finite number >= 0 (got ", o.mezo.lr, ")");
  check(std::isfinite(o.mezo.eps) && o.mezo.eps > 0, "--eps must be a finite number > 0 (got ", o.mezo.eps, ")");
  check(std::isfinite(o.mezo.weight_decay) && o.mezo.weight_decay >= 0,
        "--weight-decay must be a finite number >= 0 (got ", o.mezo.weight_decay, ")");
  if (model.max_positions > 0 && o.max_length > model.max_positions && !o.max_length_given)
    o.max_length = model.max_positions;
  if (model.max_positions > 0 && o.max_length > model.max_positions)
    fail("--max-length ", o.max_length, " is beyond the model's ", model.max_positions, " positions (", model.file,
         "); use at most --max-length ", model.max_positions);
  if (o.data_dir.empty()) {
    input_file(o.data, "--data");
  } else {
    check(!o.task.empty(), "--data-dir needs --task");
    std::error_code ec;
    if (!fs::is_directory(o.data_dir, ec)) fail("--data-dir ", o.data_dir.string(), ": not a directory");
  }
  if (!o.eval.empty()) input_file(o.eval, "--eval");
}

}  // namespace zotune
