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
    read_common_config(f, cfg_);
    if (cfg_.hf_architecture.empty()) cfg_.hf_architecture = "LlamaForCausalLM";
    cfg_.vocab_size = f.req<int64_t>("vocab_size");
    cfg_.hidden_size = f.req<int64_t>("hidden_size");
    cfg_.num_layers = f.req<int64_t>("num_hidden_layers");
    cfg_.num_heads = f.req<int64_t>("num_attention_heads");
    cfg_.num_kv_heads = f.opt<int64_t>("num_key_value_heads", cfg_.num_heads);
    check(cfg_.num_heads > 0, file, ": field 'num_attention_heads' must be positive");
    cfg_.head_dim = f.opt<int64_t>("head_dim", cfg_.hidden_size / cfg_.num_heads);
    cfg_.max_positions = f.opt<int64_t>("max_position_embeddings", 0);
    cfg_.tie_word_embeddings = f.opt<bool>("tie_word_embeddings", false);
    RmsRopeOptions o;
    o.intermediate_size = f.req<int64_t>("intermediate_size");
    o.rms_eps = static_cast<float>(f.opt<double>("rms_norm_eps", 1e-6));
    o.attention_bias = f.opt<bool>("attention_bias", false);
    o.mlp_bias = f.opt<bool>("mlp_bias", false);
    o.inv_freq = read_rope_inv_freq(f, cfg_.head_dim, 10000.0);
    build(f, std::move(o));
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
