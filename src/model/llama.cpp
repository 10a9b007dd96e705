// LLaMA (LlamaForCausalLM): the RMSNorm/RoPE/GQA/SwiGLU decoder with optional
// attention/MLP biases, rope_scaling (llama3, linear), tied or untied lm_head.
#include "base/error.h"
#include "model/rms_rope_decoder.h"

namespace zotune {
namespace {

class Llama final : public RmsRopeDecoder {
 public:
  Llama(const Json& j, const std::string& file) {
    JsonFields f(j, file);
    build(f, read_config(f, "LlamaForCausalLM", 0, true));
  }
};

}  // namespace

Json preset_llama(const std::string& name) {
  Json j = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_act", "silu"},
            {"attention_bias", false}, {"mlp_bias", false}, {"initializer_range", 0.02},
            {"rms_norm_eps", 1e-5}, {"bos_token_id", 1}, {"eos_token_id", 2}};
  if (name == "tiny") {
    j.update({{"vocab_size", 512}, {"hidden_size", 64}, {"intermediate_size", 192}, {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 16},
              {"max_position_embeddings", 256}, {"rope_theta", 10000.0}, {"tie_word_embeddings", false}});
  } else if (name == "llama-3.2-1b") {
    j.update({{"vocab_size", 128256}, {"hidden_size", 2048}, {"intermediate_size", 8192},
              {"num_hidden_layers", 16}, {"num_attention_heads", 32}, {"num_key_value_heads", 8},
              {"head_dim", 64}, {"max_position_embeddings", 131072}, {"rope_theta", 500000.0},
              {"rope_scaling", {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0},
                                {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}}},
              {"tie_word_embeddings", true}, {"bos_token_id", 128000}, {"eos_token_id", 128001}});
  } else {
    return Json();
  }
  return j;
}

std::unique_ptr<Architecture> make_llama(const Json& config, const std::string& file) {
  return std::make_unique<Llama>(config, file);
}

}  // namespace zotune
