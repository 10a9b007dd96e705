// zotune replay --model BASE --log updates.jsonl --out DIR [--steps N] [--save-dtype D]
// Rebuilds fine-tuned weights exactly from the base model and a run's update log.
#include "base/error.h"
#include "commands.h"
#include "train/trainer.h"

namespace zotune::cli {

namespace {
struct ReplayArgs {
  std::string model, log, out, save_dtype;
  int64_t steps = -1;
};
}  // namespace

void register_replay(CLI::App& app) {
  auto a = std::make_shared<ReplayArgs>();
  auto* c = app.add_subcommand("replay", "Rebuild fine-tuned weights from a base model and an update log");
  c->add_option("--model", a->model, "the base model the run started from")->required();
  c->add_option("--log", a->log, "the run's updates.jsonl")->required();
  c->add_option("--out", a->out, "output directory")->required();
  c->add_option("--steps", a->steps, "replay only the first N updates (default: all)");
  c->add_option("--save-dtype", a->save_dtype, "dtype of the saved model (default: the base model's)");
  c->callback([a] {
    set_action([a] {
      std::optional<DType> d;
      if (!a->save_dtype.empty()) {
        d = dtype_from_cli(a->save_dtype);
        if (!d || !is_float_storage(*d)) fail("--save-dtype: unsupported value '", a->save_dtype, "'");
      }
      replay_updates(a->model, a->log, a->out, a->steps >= 0 ? std::optional<int64_t>(a->steps) : std::nullopt, d);
      std::printf("{\"out\": \"%s\"}\n", a->out.c_str());
    });
  });
}

}  // namespace zotune::cli
