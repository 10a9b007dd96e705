// zotune generate --model DIR (--prompt TEXT | --input-ids "1,2,3") [--max-new-tokens N]
//                 [--temperature T --top-k K --top-p P --seed S] [--stop STR ...] [--json]
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "base/error.h"
#include "base/threads.h"
#include "commands.h"
#include "option_checks.h"
#include "io/json_file.h"
#include "model/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace zotune::cli {

namespace {
struct GenerateArgs {
  std::string model, prompt, input_ids;
  bool prompt_given = false;
  SamplingOptions s;
  std::vector<std::string> stop;
  bool json = false;
  int threads = 0;
};

std::vector<int32_t> parse_ids(const std::string& text, const char* flag) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      std::size_t used = 0;
      long long v = std::stoll(item, &used);
      if (used != item.size() && item.find_first_not_of(" \t", used) != std::string::npos) throw std::invalid_argument("");
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      fail(flag, ": '", item, "' is not an integer");
    }
  }
  return ids;
}

void run_generate(GenerateArgs a) {
  set_compute_threads(a.threads);
  if (a.prompt_given && a.prompt.empty()) fail("--prompt is empty; give some text (or token ids with --input-ids)");
  if (a.prompt.empty() == a.input_ids.empty()) fail("give exactly one of --prompt and --input-ids");
  LoadedModel m = load_model(a.model);
  std::optional<Tokenizer> tok;
  std::vector<int32_t> prompt;
  if (!a.prompt.empty()) {
    tok.emplace(Tokenizer::load(a.model));
    prompt = tok->encode(a.prompt, true);
  } else {
    prompt = parse_ids(a.input_ids, "--input-ids");
    for (const auto& f : {"tokenizer.json", "vocab.json"})
      if (std::filesystem::exists(std::filesystem::path(a.model) / f)) {
        tok.emplace(Tokenizer::load(a.model));
        break;
      }
  }
  a.s.eos_ids = m.arch->config().eos_token_ids;
  auto gen_cfg = std::filesystem::path(a.model) / "generation_config.json";
  if (std::filesystem::exists(gen_cfg)) {
    Json g = read_json_file(gen_cfg);
    if (g.contains("eos_token_id")) {
      a.s.eos_ids.clear();
      if (g["eos_token_id"].is_array()) for (auto& e : g["eos_token_id"]) a.s.eos_ids.push_back(e.get<int32_t>());
      else if (g["eos_token_id"].is_number_integer()) a.s.eos_ids.push_back(g["eos_token_id"].get<int32_t>());
    }
  }
  a.s.stop_strings = a.stop;
  std::function<std::string(std::span<const int32_t>)> decode;
  if (tok) decode = [&](std::span<const int32_t> ids) { return tok->decode(ids, false); };
  if (!a.stop.empty() && !tok) fail("--stop needs a tokenizer in ", a.model);
  GenerationResult r = generate(*m.arch, m.weights->ptrs(), prompt, a.s, decode);
  std::string text = tok ? tok->decode(r.new_ids, true) : std::string();
  if (!a.stop.empty())
    for (const auto& s : a.stop)
      if (auto p = text.find(s); p != std::string::npos) text.resize(p);
  if (a.json || !tok) {
    Json out = {{"prompt_ids", prompt}, {"ids", r.new_ids}, {"stop_reason", r.stop_reason}};
    if (tok) out["text"] = text;
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%s%s\n", a.prompt.c_str(), text.c_str());
  }
}
}  // namespace

void register_generate(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate text with a KV cache (greedy or sampled)");
  cmd->add_option("--model", args->model, "Hugging Face model directory")->required();
  auto* prompt = cmd->add_option("--prompt", args->prompt, "prompt text (needs the model's tokenizer files)");
  cmd->add_option("--input-ids", args->input_ids, "prompt as comma-separated token ids");
  cmd->add_option("--max-new-tokens", args->s.max_new_tokens, "tokens to generate")->capture_default_str()->check(kNonNegative);
  cmd->add_option("--temperature", args->s.temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", args->s.top_k, "keep the k most likely tokens (0 = off)")->capture_default_str()->check(kNonNegative);
  cmd->add_option("--top-p", args->s.top_p, "nucleus sampling mass (1 = off)")->capture_default_str();
  cmd->add_option("--seed", args->s.seed, "sampling seed")->capture_default_str()->check(kUint64Text);
  cmd->add_option("--stop", args->stop, "stop when this string appears (repeatable)");
  cmd->add_flag("--json", args->json, "print ids and text as JSON");
  cmd->add_option("--threads", args->threads, "compute threads (default: all cores)")->check(kNonNegative);
  cmd->callback([args, prompt] {
    args->prompt_given = prompt->count() > 0;
    set_action([args] { run_generate(*args); });
  });
}

}  // namespace zotune::cli
