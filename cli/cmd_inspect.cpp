// zotune inspect --model DIR [--json]
#include <cstdio>
#include <map>

#include "base/error.h"
#include "commands.h"
#include "io/safetensors.h"
#include "model/architecture.h"
#include "model/weights.h"

namespace zotune::cli {

namespace {
struct InspectArgs {
  std::string model;
  bool json = false;
};

void run_inspect(const InspectArgs& a) {
  auto arch = load_architecture(a.model);
  const ModelConfig& c = arch->config();
  Checkpoint ckpt(a.model);
  const auto& table = arch->tensors();
  std::vector<int64_t> block_params(static_cast<std::size_t>(arch->num_blocks()), 0);
  std::vector<uint64_t> block_bytes(block_params.size(), 0);
  std::map<std::string, int64_t> dtype_params;
  int64_t total = 0;
  uint64_t bytes = 0;
  for (const auto& spec : table) {
    TensorView v = checked_view(*arch, ckpt, spec);
    const auto b = static_cast<std::size_t>(spec.block);
    block_params[b] += spec.numel();
    block_bytes[b] += v.nbytes();
    dtype_params[std::string(dtype_name(v.dtype))] += spec.numel();
    total += spec.numel();
    bytes += v.nbytes();
  }
  Json out = {{"model", a.model},
              {"model_type", c.model_type},
              {"architecture", c.hf_architecture},
              {"parameters", total},
              {"bytes", bytes},
              {"tensors", table.size()},
              {"vocab_size", c.vocab_size},
              {"hidden_size", c.hidden_size},
              {"layers", c.num_layers},
              {"heads", c.num_heads},
              {"kv_heads", c.num_kv_heads},
              {"head_dim", c.head_dim},
              {"tie_word_embeddings", c.tie_word_embeddings}};
  Json dt = Json::object();
  for (auto& [k, v] : dtype_params) dt[k] = v;
  out["dtypes"] = dt;
  Json blocks = Json::array();
  for (std::size_t b = 0; b < block_params.size(); ++b) {
    std::string name = b == 0 ? "embeddings" : b + 1 == block_params.size() ? "head" : "layer." + std::to_string(b - 1);
    blocks.push_back({{"block", b}, {"name", name}, {"parameters", block_params[b]}, {"bytes", block_bytes[b]}});
  }
  out["blocks"] = blocks;
  if (a.json) {
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf("model:        %s\n", a.model.c_str());
  std::printf("architecture: %s (model_type %s)\n", c.hf_architecture.c_str(), c.model_type.c_str());
  std::printf("parameters:   %lld (%.2f M) in %zu tensors, %.2f MB stored\n", static_cast<long long>(total),
              total / 1e6, table.size(), bytes / 1e6);
  std::printf("dtypes:      ");
  for (auto& [k, v] : dtype_params) std::printf(" %s=%lld", k.c_str(), static_cast<long long>(v));
  std::printf("\nshape:        vocab %lld, hidden %lld, layers %lld, heads %lld (kv %lld), head_dim %lld, %s head\n",
              static_cast<long long>(c.vocab_size), static_cast<long long>(c.hidden_size),
              static_cast<long long>(c.num_layers), static_cast<long long>(c.num_heads),
              static_cast<long long>(c.num_kv_heads), static_cast<long long>(c.head_dim),
              c.tie_word_embeddings ? "tied" : "untied");
  std::printf("blocks:\n");
  for (auto& b : blocks)
    std::printf("  %3d %-12s %12lld params %10.2f MB\n", b["block"].get<int>(), b["name"].get<std::string>().c_str(),
                b["parameters"].get<long long>(), b["bytes"].get<double>() / 1e6);
}
}  // namespace

void register_inspect(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand("inspect", "Show a model's architecture, parameter count, dtypes and block sizes");
  cmd->add_option("--model", args->model, "Hugging Face model directory")->required();
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->callback([args] { set_action([args] { run_inspect(*args); }); });
}

}  // namespace zotune::cli
