// GPT-2 (GPT2LMHeadModel): learned absolute positions, pre-LayerNorm blocks,
// fused QKV and MLP weights in Conv1D layout [in, out], gelu_new, lm_head tied
// to wte. Positions follow HF generate(): the count of real tokens before.
#include <cmath>

#include "base/error.h"
#include "kernels/kernels.h"
#include "model/architecture.h"
#include "model/blocks.h"

namespace zotune {
namespace {

using blocks::Layout;

enum class Act { GeluTanh, GeluErf, Relu };

class Gpt2 final : public Architecture {
 public:
  Gpt2(const Json& j, const std::string& file) {
    JsonFields f(j, file);
    ShapeFieldNames names;
    names.hidden = "n_embd";
    names.layers = "n_layer";
    names.heads = "n_head";
    names.max_positions = "n_positions";
    names.max_positions_required = true;
    names.tied_by_default = true;
    read_shape_config(f, names, cfg_);
    cfg_.base_prefix = "transformer.";
    if (cfg_.hf_architecture.empty()) cfg_.hf_architecture = "GPT2LMHeadModel";
    inner_ = f.has("n_inner") ? checked_size(f, "n_inner", f.req<int64_t>("n_inner"), ConfigLimits::inner)
                              : 4 * cfg_.hidden_size;
    eps_ = checked_positive(f, "layer_norm_epsilon", f.opt<double>("layer_norm_epsilon", 1e-5));
    check(cfg_.hidden_size % cfg_.num_heads == 0, file, ": field 'n_embd' (", cfg_.hidden_size,
          ") is not divisible by 'n_head' (", cfg_.num_heads, ")");
    cfg_.head_dim = cfg_.hidden_size / cfg_.num_heads;
    const auto act = f.opt<std::string>("activation_function", "gelu_new");
    if (act == "gelu_new" || act == "gelu_pytorch_tanh") act_ = Act::GeluTanh;
    else if (act == "gelu") act_ = Act::GeluErf;
    else if (act == "relu") act_ = Act::Relu;
    else fail(file, ": field 'activation_function': unsupported value '", act, "'");
    scale_attn_ = f.opt<bool>("scale_attn_weights", true);
    if (f.opt<bool>("scale_attn_by_inverse_layer_idx", false))
      fail(file, ": field 'scale_attn_by_inverse_layer_idx': true is not supported");
    if (f.opt<bool>("add_cross_attention", false))
      fail(file, ": field 'add_cross_attention': true is not supported");
    // reorder_and_upcast_attn only changes precision of an fp32 computation; allowed.
    state_assumed(cfg_, "n_inner", inner_);
    state_assumed(cfg_, "layer_norm_epsilon", f.opt<double>("layer_norm_epsilon", 1e-5));
    state_assumed(cfg_, "activation_function", act);
    state_assumed(cfg_, "scale_attn_weights", scale_attn_);

    const int64_t C = cfg_.hidden_size, V = cfg_.vocab_size, I = inner_;
    const std::string p = "transformer.";
    wte_ = add_tensor(p + "wte.weight", {V, C}, 0, TensorRole::Embedding);
    token_embedding_id_ = wte_;
    wpe_ = add_tensor(p + "wpe.weight", {cfg_.max_positions, C}, 0, TensorRole::Embedding);
    for (int64_t l = 0; l < cfg_.num_layers; ++l) {
      const int b = static_cast<int>(l) + 1;
      const std::string h = p + "h." + std::to_string(l) + ".";
      Layer L;
      L.ln1_w = add_tensor(h + "ln_1.weight", {C}, b, TensorRole::Norm);
      L.ln1_b = add_tensor(h + "ln_1.bias", {C}, b, TensorRole::Norm);
      L.attn_w = add_tensor(h + "attn.c_attn.weight", {C, 3 * C}, b, TensorRole::Matrix);
      L.attn_b = add_tensor(h + "attn.c_attn.bias", {3 * C}, b, TensorRole::Bias);
      L.proj_w = add_tensor(h + "attn.c_proj.weight", {C, C}, b, TensorRole::Matrix);
      L.proj_b = add_tensor(h + "attn.c_proj.bias", {C}, b, TensorRole::Bias);
      L.ln2_w = add_tensor(h + "ln_2.weight", {C}, b, TensorRole::Norm);
      L.ln2_b = add_tensor(h + "ln_2.bias", {C}, b, TensorRole::Norm);
      L.fc_w = add_tensor(h + "mlp.c_fc.weight", {C, I}, b, TensorRole::Matrix);
      L.fc_b = add_tensor(h + "mlp.c_fc.bias", {I}, b, TensorRole::Bias);
      L.fc2_w = add_tensor(h + "mlp.c_proj.weight", {I, C}, b, TensorRole::Matrix);
      L.fc2_b = add_tensor(h + "mlp.c_proj.bias", {C}, b, TensorRole::Bias);
      layers_.push_back(L);
    }
    const int hb = static_cast<int>(cfg_.num_layers) + 1;
    lnf_w_ = add_tensor(p + "ln_f.weight", {C}, hb, TensorRole::Norm);
    lnf_b_ = add_tensor(p + "ln_f.bias", {C}, hb, TensorRole::Norm);
    head_weight_id_ = cfg_.tie_word_embeddings
                          ? wte_
                          : add_tensor("lm_head.weight", {V, C}, hb, TensorRole::Matrix);
  }

  int64_t scratch_floats(int64_t rows) const override {
    const int64_t C = cfg_.hidden_size;
    return rows * (C + 3 * C + C + inner_);
  }

  void embed(ParamPtrs w, const ForwardInput& in, Activations& a) const override {
    const int64_t C = cfg_.hidden_size, R = in.B * in.T;
    float* x = blocks::ensure(a.x, R * C);
    blocks::gather_rows(w[wte_], cfg_.vocab_size, C, in.ids, R, x);
    for (int64_t r = 0; r < R; ++r) {
      const int64_t pos = in.positions[r];
      if (pos < 0 || pos >= cfg_.max_positions)
        fail("position ", pos, " is outside n_positions = ", cfg_.max_positions, " of ", cfg_.file);
      kernels::add_inplace(x + r * C, w[wpe_] + pos * C, C);
    }
  }

  void layer(int64_t l, ParamPtrs w, const ForwardInput& in, Activations& a,
             KVCache* cache) const override {
    const Layer& L = layers_[static_cast<std::size_t>(l)];
    const int64_t C = cfg_.hidden_size, R = in.B * in.T, I = inner_;
    float* x = a.x.data();
    float* s = blocks::ensure(*a.scratch, scratch_floats(R));
    float* h = s;
    float* qkv = h + R * C;
    float* att = qkv + R * 3 * C;
    float* mlp = att + R * C;

    kernels::layer_norm(x, w[L.ln1_w], w[L.ln1_b], h, R, C, eps_);
    blocks::linear(h, R, C, w[L.attn_w], 3 * C, w[L.attn_b], qkv, Layout::InOut);
    const float scale = scale_attn_ ? 1.0f / std::sqrt(static_cast<float>(cfg_.head_dim)) : 1.0f;
    blocks::self_attention({&cfg_, &in, cache, l, scale}, qkv, 3 * C, qkv + C, qkv + 2 * C, 3 * C, att,
                           *a.attn);
    blocks::linear(att, R, C, w[L.proj_w], C, w[L.proj_b], h, Layout::InOut);
    kernels::add_inplace(x, h, R * C);

    kernels::layer_norm(x, w[L.ln2_w], w[L.ln2_b], h, R, C, eps_);
    blocks::linear(h, R, C, w[L.fc_w], I, w[L.fc_b], mlp, Layout::InOut);
    activate(mlp, R * I);
    blocks::linear(mlp, R, I, w[L.fc2_w], C, w[L.fc2_b], h, Layout::InOut);
    kernels::add_inplace(x, h, R * C);
  }

  void final_hidden(ParamPtrs w, const Activations& a, const int64_t* rows, int64_t nrows,
                    float* hidden) const override {
    const int64_t C = cfg_.hidden_size;
    for (int64_t i = 0; i < nrows; ++i)
      kernels::layer_norm(a.x.data() + rows[i] * C, w[lnf_w_], w[lnf_b_], hidden + i * C, 1, C, eps_);
  }

 private:
  struct Layer {
    int ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fc2_w, fc2_b;
  };
  void activate(float* v, int64_t n) const {
    switch (act_) {
      case Act::GeluTanh: kernels::gelu_tanh_inplace(v, n); break;
      case Act::GeluErf: kernels::gelu_erf_inplace(v, n); break;
      case Act::Relu: kernels::relu_inplace(v, n); break;
    }
  }
  int64_t inner_ = 0;
  float eps_ = 1e-5f;
  Act act_ = Act::GeluTanh;
  bool scale_attn_ = true;
  int wte_ = -1, wpe_ = -1, lnf_w_ = -1, lnf_b_ = -1;
  std::vector<Layer> layers_;
};

}  // namespace

Json preset_gpt2(const std::string& name) {
  Json j = {{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"},
          {"activation_function", "gelu_new"}, {"layer_norm_epsilon", 1e-5},
          {"initializer_range", 0.02}, {"bos_token_id", 50256}, {"eos_token_id", 50256},
          {"tie_word_embeddings", true}, {"scale_attn_weights", true}};
  if (name == "tiny") {
    j.update({{"vocab_size", 512}, {"n_embd", 64}, {"n_layer", 2}, {"n_head", 4}, {"n_positions", 256},
            {"bos_token_id", 0}, {"eos_token_id", 0}});
  } else if (name == "gpt2-124m") {
    j.update({{"vocab_size", 50257}, {"n_embd", 768}, {"n_layer", 12}, {"n_head", 12},
            {"n_positions", 1024}});
  } else {
    return Json();
  }
  return j;
}

std::unique_ptr<Architecture> make_gpt2(const Json& config, const std::string& file) {
  return std::make_unique<Gpt2>(config, file);
}

}  // namespace zotune
