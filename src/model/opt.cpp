// OPT (OPTForCausalLM): learned positions offset by 2 and counted from the
// attention mask, pre- or post-LayerNorm (do_layer_norm_before), optional
// project_in/project_out when word_embed_proj_dim != hidden_size, separate
// q/k/v projections with biases, lm_head tied to embed_tokens.
#include <cmath>

#include "base/error.h"
#include "kernels/kernels.h"
#include "model/architecture.h"
#include "model/blocks.h"

namespace zotune {
namespace {

using blocks::Layout;
constexpr int64_t kPositionOffset = 2;  // fairseq's padding_idx + 1

class Opt final : public Architecture {
 public:
  Opt(const Json& j, const std::string& file) {
    JsonFields f(j, file);
    ShapeFieldNames names;
    names.max_positions_required = true;
    names.tied_by_default = true;
    read_shape_config(f, names, cfg_);
    cfg_.base_prefix = "model.";
    if (cfg_.hf_architecture.empty()) cfg_.hf_architecture = "OPTForCausalLM";
    ffn_ = checked_size(f, "ffn_dim", f.req<int64_t>("ffn_dim"), ConfigLimits::inner);
    proj_ = checked_size(f, "word_embed_proj_dim", f.opt<int64_t>("word_embed_proj_dim", cfg_.hidden_size),
                         ConfigLimits::width);
    pre_ln_ = f.opt<bool>("do_layer_norm_before", true);
    final_ln_ = pre_ln_ && !f.opt<bool>("_remove_final_layer_norm", false);
    bias_ = f.opt<bool>("enable_bias", true);
    check(ffn_ > 0 && proj_ > 0, file, ": fields 'ffn_dim' and 'word_embed_proj_dim' must be positive");
    check(cfg_.hidden_size % cfg_.num_heads == 0, file, ": field 'hidden_size' (", cfg_.hidden_size,
          ") is not divisible by 'num_attention_heads' (", cfg_.num_heads, ")");
    cfg_.head_dim = cfg_.hidden_size / cfg_.num_heads;
    affine_ = f.opt<bool>("layer_norm_elementwise_affine", true);
    if (!affine_) ones_.assign(static_cast<std::size_t>(cfg_.hidden_size), 1.0f);
    const auto act = f.opt<std::string>("activation_function", "relu");
    if (act == "relu") gelu_ = false;
    else if (act == "gelu") gelu_ = true;
    else fail(file, ": field 'activation_function': unsupported value '", act, "'");
    state_assumed(cfg_, "word_embed_proj_dim", proj_);
    state_assumed(cfg_, "do_layer_norm_before", pre_ln_);
    state_assumed(cfg_, "enable_bias", bias_);
    state_assumed(cfg_, "layer_norm_elementwise_affine", affine_);
    state_assumed(cfg_, "activation_function", act);

    const int64_t C = cfg_.hidden_size, V = cfg_.vocab_size, P = proj_;
    const std::string p = "model.decoder.";
    const int hb = static_cast<int>(cfg_.num_layers) + 1;
    embed_ = add_tensor(p + "embed_tokens.weight", {V, P}, 0, TensorRole::Embedding);
    token_embedding_id_ = embed_;
    pos_ = add_tensor(p + "embed_positions.weight", {cfg_.max_positions + kPositionOffset, C}, 0,
                      TensorRole::Embedding);
    if (P != C) {
      proj_in_ = add_tensor(p + "project_in.weight", {C, P}, 0, TensorRole::Matrix);
      proj_out_ = add_tensor(p + "project_out.weight", {P, C}, hb, TensorRole::Matrix);
    }
    auto bias = [&](const std::string& n, int64_t len, int b) {
      return bias_ ? add_tensor(n, {len}, b, TensorRole::Bias) : -1;
    };
    // layer_norm_elementwise_affine = false: LayerNorms without weight and bias.
    auto norm = [&](const std::string& n, int b) { return affine_ ? add_tensor(n, {C}, b, TensorRole::Norm) : -1; };
    for (int64_t l = 0; l < cfg_.num_layers; ++l) {
      const int b = static_cast<int>(l) + 1;
      const std::string h = p + "layers." + std::to_string(l) + ".";
      Layer L;
      L.q_w = add_tensor(h + "self_attn.q_proj.weight", {C, C}, b, TensorRole::Matrix);
      L.q_b = bias(h + "self_attn.q_proj.bias", C, b);
      L.k_w = add_tensor(h + "self_attn.k_proj.weight", {C, C}, b, TensorRole::Matrix);
      L.k_b = bias(h + "self_attn.k_proj.bias", C, b);
      L.v_w = add_tensor(h + "self_attn.v_proj.weight", {C, C}, b, TensorRole::Matrix);
      L.v_b = bias(h + "self_attn.v_proj.bias", C, b);
      L.o_w = add_tensor(h + "self_attn.out_proj.weight", {C, C}, b, TensorRole::Matrix);
      L.o_b = bias(h + "self_attn.out_proj.bias", C, b);
      L.ln1_w = norm(h + "self_attn_layer_norm.weight", b);
      L.ln1_b = norm(h + "self_attn_layer_norm.bias", b);
      L.fc1_w = add_tensor(h + "fc1.weight", {ffn_, C}, b, TensorRole::Matrix);
      L.fc1_b = bias(h + "fc1.bias", ffn_, b);
      L.fc2_w = add_tensor(h + "fc2.weight", {C, ffn_}, b, TensorRole::Matrix);
      L.fc2_b = bias(h + "fc2.bias", C, b);
      L.ln2_w = norm(h + "final_layer_norm.weight", b);
      L.ln2_b = norm(h + "final_layer_norm.bias", b);
      layers_.push_back(L);
    }
    if (final_ln_) {
      lnf_w_ = norm(p + "final_layer_norm.weight", hb);
      lnf_b_ = norm(p + "final_layer_norm.bias", hb);
    }
    head_weight_id_ = cfg_.tie_word_embeddings ? embed_
                                               : add_tensor("lm_head.weight", {V, P}, hb, TensorRole::Matrix);
  }

  int64_t head_width() const override { return proj_; }

  int64_t scratch_floats(int64_t rows) const override {
    const int64_t C = cfg_.hidden_size;
    return rows * (C + 3 * C + C + std::max(ffn_, proj_) + C);
  }

  void embed(ParamPtrs w, const ForwardInput& in, Activations& a) const override {
    const int64_t C = cfg_.hidden_size, R = in.B * in.T, P = proj_;
    float* x = blocks::ensure(a.x, R * C);
    if (proj_in_ >= 0) {
      float* tok = blocks::ensure(*a.scratch, std::max(scratch_floats(R), R * P));
      blocks::gather_rows(w[embed_], cfg_.vocab_size, P, in.ids, R, tok);
      blocks::linear(tok, R, P, w[proj_in_], C, nullptr, x, Layout::OutIn);
    } else {
      blocks::gather_rows(w[embed_], cfg_.vocab_size, C, in.ids, R, x);
    }
    for (int64_t r = 0; r < R; ++r) {
      // HF: cumsum(mask) * mask - 1 + offset; a padded token lands on row 1.
      const bool real = !in.token_mask || in.token_mask[r];
      const int64_t row = real ? in.positions[r] + kPositionOffset : kPositionOffset - 1;
      if (row < 0 || row >= cfg_.max_positions + kPositionOffset)
        fail("position ", in.positions[r], " is outside max_position_embeddings = ", cfg_.max_positions,
             " of ", cfg_.file);
      kernels::add_inplace(x + r * C, w[pos_] + row * C, C);
    }
  }

  void layer(int64_t l, ParamPtrs w, const ForwardInput& in, Activations& a,
             KVCache* cache) const override {
    const Layer& L = layers_[static_cast<std::size_t>(l)];
    const int64_t C = cfg_.hidden_size, R = in.B * in.T;
    float* x = a.x.data();
    float* s = blocks::ensure(*a.scratch, scratch_floats(R));
    float* h = s;
    float* qkv = h + R * C;
    float* att = qkv + R * 3 * C;
    float* mlp = att + R * C;
    auto wb = [&](int id) { return id >= 0 ? w[id] : nullptr; };
    auto gamma = [&](int id) { return id >= 0 ? w[id] : ones_.data(); };

    const float* attn_in = x;
    if (pre_ln_) {
      kernels::layer_norm(x, gamma(L.ln1_w), wb(L.ln1_b), h, R, C, eps_);
      attn_in = h;
    }
    blocks::linear(attn_in, R, C, w[L.q_w], C, wb(L.q_b), qkv, Layout::OutIn, 0, 3 * C);
    blocks::linear(attn_in, R, C, w[L.k_w], C, wb(L.k_b), qkv + C, Layout::OutIn, 0, 3 * C);
    blocks::linear(attn_in, R, C, w[L.v_w], C, wb(L.v_b), qkv + 2 * C, Layout::OutIn, 0, 3 * C);
    const float scale = 1.0f / std::sqrt(static_cast<float>(cfg_.head_dim));
    blocks::self_attention({&cfg_, &in, cache, l, scale}, qkv, 3 * C, qkv + C, qkv + 2 * C, 3 * C, att,
                           *a.attn);
    blocks::linear(att, R, C, w[L.o_w], C, wb(L.o_b), h, Layout::OutIn);
    kernels::add_inplace(x, h, R * C);
    if (!pre_ln_) kernels::layer_norm(x, gamma(L.ln1_w), wb(L.ln1_b), x, R, C, eps_);

    const float* mlp_in = x;
    if (pre_ln_) {
      kernels::layer_norm(x, gamma(L.ln2_w), wb(L.ln2_b), h, R, C, eps_);
      mlp_in = h;
    }
    blocks::linear(mlp_in, R, C, w[L.fc1_w], ffn_, wb(L.fc1_b), mlp, Layout::OutIn);
    if (gelu_) kernels::gelu_erf_inplace(mlp, R * ffn_);
    else kernels::relu_inplace(mlp, R * ffn_);
    blocks::linear(mlp, R, ffn_, w[L.fc2_w], C, wb(L.fc2_b), h, Layout::OutIn);
    kernels::add_inplace(x, h, R * C);
    if (!pre_ln_) kernels::layer_norm(x, gamma(L.ln2_w), wb(L.ln2_b), x, R, C, eps_);
  }

  void final_hidden(ParamPtrs w, const Activations& a, const int64_t* rows, int64_t nrows,
                    float* hidden) const override {
    const int64_t C = cfg_.hidden_size;
    AlignedBuffer<float> tmp(static_cast<std::size_t>(C));
    for (int64_t i = 0; i < nrows; ++i) {
      const float* src = a.x.data() + rows[i] * C;
      float* dst = proj_out_ >= 0 ? tmp.data() : hidden + i * C;
      if (final_ln_)
        kernels::layer_norm(src, lnf_w_ >= 0 ? w[lnf_w_] : ones_.data(), lnf_b_ >= 0 ? w[lnf_b_] : nullptr, dst, 1,
                            C, eps_);
      else std::copy(src, src + C, dst);
      if (proj_out_ >= 0) blocks::linear(dst, 1, C, w[proj_out_], proj_, nullptr, hidden + i * proj_, Layout::OutIn);
    }
  }

 private:
  struct Layer {
    int q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln1_w, ln1_b, fc1_w, fc1_b, fc2_w, fc2_b, ln2_w, ln2_b;
  };
  static constexpr float eps_ = 1e-5f;  // nn.LayerNorm default; OPT's config has no field for it
  int64_t ffn_ = 0, proj_ = 0;
  bool pre_ln_ = true, final_ln_ = true, bias_ = true, gelu_ = false, affine_ = true;
  std::vector<float> ones_;  // LayerNorm weight when the norms are not affine
  int embed_ = -1, pos_ = -1, proj_in_ = -1, proj_out_ = -1, lnf_w_ = -1, lnf_b_ = -1;
  std::vector<Layer> layers_;
};

}  // namespace

Json preset_opt(const std::string& name) {
  Json j = {{"architectures", {"OPTForCausalLM"}}, {"model_type", "opt"}, {"activation_function", "relu"},
            {"do_layer_norm_before", true}, {"enable_bias", true}, {"layer_norm_elementwise_affine", true},
            {"init_std", 0.02}, {"bos_token_id", 2}, {"eos_token_id", 2}, {"pad_token_id", 1},
            {"tie_word_embeddings", true}, {"dropout", 0.1}, {"attention_dropout", 0.0}};
  if (name == "tiny") {
    j.update({{"vocab_size", 512}, {"hidden_size", 64}, {"word_embed_proj_dim", 64}, {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"ffn_dim", 256}, {"max_position_embeddings", 256}});
  } else if (name == "opt-125m") {
    j.update({{"vocab_size", 50272}, {"hidden_size", 768}, {"word_embed_proj_dim", 768},
              {"num_hidden_layers", 12}, {"num_attention_heads", 12}, {"ffn_dim", 3072},
              {"max_position_embeddings", 2048}});
  } else {
    return Json();
  }
  return j;
}

std::unique_ptr<Architecture> make_opt(const Json& config, const std::string& file) {
  return std::make_unique<Opt>(config, file);
}

}  // namespace zotune
