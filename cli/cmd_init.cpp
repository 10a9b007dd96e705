// zotune init --arch gpt2|opt|llama|qwen3 --preset NAME [--dtype fp32|bf16|fp16] [--seed S]
//             [--tokenizer DIR] --out DIR
#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "base/fs.h"
#include "commands.h"
#include "option_checks.h"
#include "model/architecture.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace zotune::cli {

namespace {
struct InitArgs {
  std::string arch, preset, dtype = "fp32", out, tokenizer;
  uint64_t seed = 0;
};

void run_init(const InitArgs& a) {
  auto dtype = dtype_from_cli(a.dtype);
  if (!dtype || !is_float_storage(*dtype)) fail("--dtype: unsupported value '", a.dtype, "' (fp32, bf16 or fp16)");
  Json config = architecture_preset(a.arch, a.preset);
  std::vector<std::filesystem::path> tok_files;
  if (!a.tokenizer.empty()) {
    Tokenizer tok = Tokenizer::load(a.tokenizer);
    config["vocab_size"] = tok.vocab_size();
    if (auto b = tok.bos_id()) config["bos_token_id"] = *b;
    if (auto e = tok.eos_id()) config["eos_token_id"] = *e;
    if (auto p = tok.pad_id()) config["pad_token_id"] = *p;
    tok_files = tok.files();
  }
  init_checkpoint(config, *dtype, a.seed, a.out);
  for (const auto& f : tok_files) copy_file_atomic(f, std::filesystem::path(a.out) / f.filename());
  std::printf("{\"out\": \"%s\", \"arch\": \"%s\", \"preset\": \"%s\", \"dtype\": \"%s\", \"vocab_size\": %lld}\n",
              a.out.c_str(), a.arch.c_str(), a.preset.c_str(), a.dtype.c_str(),
              config["vocab_size"].get<long long>());
}
}  // namespace

void register_init(CLI::App& app) {
  auto args = std::make_shared<InitArgs>();
  auto* cmd = app.add_subcommand("init", "Write a random-initialised checkpoint in Hugging Face layout");
  cmd->add_option("--arch", args->arch, "gpt2, opt, llama or qwen3")->required();
  cmd->add_option("--preset", args->preset, "tiny, gpt2-124m, opt-125m, qwen3-0.6b, llama-3.2-1b")->required();
  cmd->add_option("--dtype", args->dtype, "storage dtype: fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option("--seed", args->seed, "initialisation seed")->capture_default_str()->check(kUint64Text);
  cmd->add_option("--tokenizer", args->tokenizer, "copy this tokenizer into the checkpoint and size the vocabulary to it");
  cmd->add_option("--out", args->out, "output directory")->required();
  cmd->callback([args] { set_action([args] { run_init(*args); }); });
}

}  // namespace zotune::cli
