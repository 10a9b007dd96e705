// Qwen3 (Qwen3ForCausalLM): the LLaMA-style decoder plus per-head RMSNorm of
// queries and keys before RoPE; head_dim is its own config field.
#include "base/error.h"
#include "model/rms_rope_decoder.h"

namespace zotune {
namespace {

class Qwen3 final : public RmsRopeDecoder {
 public:
  Qwen3(const Json& j, const std::string& file) {
    JsonFields f(j, file);
    if (f.opt<bool>("use_sliding_window", false))
      fail(file, ": field 'use_sliding_window': sliding-window attention is not supported");
    RmsRopeOptions o = read_config(f, "Qwen3ForCausalLM", 128, false);  // Qwen3Config: head_dim 128
    // Attention is full at every length. Qwen3Config defaults sliding_window to
    // 4096 and transformers 4.51 applies it whatever use_sliding_window says, so
    // the config written states null, as released Qwen3 configs do.
    cfg_.json["sliding_window"] = nullptr;
    cfg_.json["use_sliding_window"] = false;
    o.qk_norm = true;
    build(f, std::move(o));
  }
};

}  // namespace

Json preset_qwen3(const std::string& name) {
  Json j = {{"architectures", {"Qwen3ForCausalLM"}}, {"model_type", "qwen3"}, {"hidden_act", "silu"},
            {"attention_bias", false}, {"initializer_range", 0.02}, {"rms_norm_eps", 1e-6},
            {"use_sliding_window", false}, {"sliding_window", nullptr}, {"bos_token_id", 151643}, {"eos_token_id", 151645}};
  if (name == "tiny") {
    j.update({{"vocab_size", 512}, {"hidden_size", 64}, {"intermediate_size", 192}, {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 32},
              {"max_position_embeddings", 256}, {"rope_theta", 1000000.0}, {"tie_word_embeddings", true},
              {"bos_token_id", 0}, {"eos_token_id", 0}});
  } else if (name == "qwen3-0.6b") {
    j.update({{"vocab_size", 151936}, {"hidden_size", 1024}, {"intermediate_size", 3072},
              {"num_hidden_layers", 28}, {"num_attention_heads", 16}, {"num_key_value_heads", 8},
              {"head_dim", 128}, {"max_position_embeddings", 40960}, {"rope_theta", 1000000.0},
              {"tie_word_embeddings", true}});
  } else {
    return Json();
  }
  return j;
}

std::unique_ptr<Architecture> make_qwen3(const Json& config, const std::string& file) {
  return std::make_unique<Qwen3>(config, file);
}

}  // namespace zotune
