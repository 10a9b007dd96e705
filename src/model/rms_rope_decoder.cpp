#include "model/rms_rope_decoder.h"

#include <cmath>
#include <numbers>

#include "base/error.h"
#include "kernels/kernels.h"
#include "model/blocks.h"

namespace zotune {

using blocks::Layout;

std::vector<float> read_rope_inv_freq(const JsonFields& f, int64_t head_dim, double default_theta) {
  // transformers >= 5 nests everything in rope_parameters; older configs use
  // rope_theta + rope_scaling.
  const bool nested = f.has("rope_parameters");
  const Json none = Json::object();
  const Json& params = nested ? f.raw()["rope_parameters"] : (f.has("rope_scaling") ? f.raw()["rope_scaling"] : none);
  const std::string where = nested ? "rope_parameters" : "rope_scaling";
  if (!params.is_object()) fail(f.file(), ": field '", where, "' must be an object");
  JsonFields p(params, f.file() + " (" + where + ")");
  double theta = nested ? p.opt<double>("rope_theta", f.opt<double>("rope_theta", default_theta))
                        : f.opt<double>("rope_theta", default_theta);
  checked_positive(f, "rope_theta", theta);
  std::string type = p.opt<std::string>("rope_type", p.opt<std::string>("type", "default"));
  check(head_dim % 2 == 0, f.file(), ": head_dim ", head_dim, " must be even for RoPE");
  const float partial = static_cast<float>(f.opt<double>("partial_rotary_factor", 1.0));
  check(partial == 1.0f, f.file(), ": field 'partial_rotary_factor' != 1 is not supported");

  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<std::size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // HF: 1 / base ** (arange(0, dim, 2).float() / dim), in fp32.
    const float e = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv[static_cast<std::size_t>(i)] = 1.0f / std::pow(static_cast<float>(theta), e);
  }
  if (type == "default") return inv;
  if (type == "linear") {
    const float factor = static_cast<float>(checked_positive(p, "factor", p.req<double>("factor")));
    for (auto& x : inv) x /= factor;
    return inv;
  }
  if (type == "llama3") {
    const double factor = checked_positive(p, "factor", p.req<double>("factor"));
    const double low = p.req<double>("low_freq_factor");
    const double high = p.req<double>("high_freq_factor");
    const double old_ctx = static_cast<double>(p.req<int64_t>("original_max_position_embeddings"));
    check(high != low, f.file(), ": ", where, ": high_freq_factor must differ from low_freq_factor");
    const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
    for (auto& x : inv) {
      const float wavelen = 2.0f * std::numbers::pi_v<float> / x;
      if (wavelen > low_wavelen) {
        x = static_cast<float>(x / factor);
      } else if (!(wavelen < high_wavelen)) {
        const float smooth = static_cast<float>((old_ctx / wavelen - low) / (high - low));
        x = (1.0f - smooth) * x / static_cast<float>(factor) + smooth * x;
      }
    }
    return inv;
  }
  fail(f.file(), ": field '", where, "': rope type '", type,
       "' is not supported (supported: default, linear, llama3)");
}

RmsRopeOptions RmsRopeDecoder::read_config(const JsonFields& f, const char* hf_architecture, int64_t default_head_dim,
                                           bool mlp_bias_field) {
  ShapeFieldNames names;
  names.kv_heads = "num_key_value_heads";
  read_shape_config(f, names, cfg_);
  if (cfg_.hf_architecture.empty()) cfg_.hf_architecture = hf_architecture;
  cfg_.head_dim = checked_size(
      f, "head_dim", f.opt<int64_t>("head_dim", default_head_dim > 0 ? default_head_dim : cfg_.hidden_size / cfg_.num_heads),
      ConfigLimits::width);
  RmsRopeOptions o;
  o.intermediate_size = checked_size(f, "intermediate_size", f.req<int64_t>("intermediate_size"), ConfigLimits::inner);
  o.rms_eps = static_cast<float>(checked_positive(f, "rms_norm_eps", f.opt<double>("rms_norm_eps", 1e-6)));
  o.attention_bias = f.opt<bool>("attention_bias", false);
  o.mlp_bias = mlp_bias_field && f.opt<bool>("mlp_bias", false);
  o.inv_freq = read_rope_inv_freq(f, cfg_.head_dim, 10000.0);
  state_assumed(cfg_, "head_dim", cfg_.head_dim);
  state_assumed(cfg_, "rms_norm_eps", static_cast<double>(f.opt<double>("rms_norm_eps", 1e-6)));
  state_assumed(cfg_, "attention_bias", o.attention_bias);
  if (mlp_bias_field) state_assumed(cfg_, "mlp_bias", o.mlp_bias);
  if (!f.has("rope_parameters")) state_assumed(cfg_, "rope_theta", f.opt<double>("rope_theta", 10000.0));
  return o;
}

void RmsRopeDecoder::build(const JsonFields& f, RmsRopeOptions opt) {
  opt_ = std::move(opt);
  const int64_t C = cfg_.hidden_size, V = cfg_.vocab_size, I = opt_.intermediate_size;
  const int64_t D = cfg_.head_dim, Hq = cfg_.num_heads, Hkv = cfg_.num_kv_heads;
  const std::string& file = f.file();
  check(C > 0 && V > 0 && I > 0 && Hq > 0 && Hkv > 0 && D > 0 && cfg_.num_layers > 0, file,
        ": vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
        "num_key_value_heads and head_dim must be positive");
  check(Hq % Hkv == 0, file, ": field 'num_attention_heads' (", Hq,
        ") is not a multiple of 'num_key_value_heads' (", Hkv, ")");
  if (f.opt<std::string>("hidden_act", "silu") != "silu")
    fail(file, ": field 'hidden_act': only \"silu\" is supported");
  cfg_.base_prefix = "model.";

  const std::string p = "model.";
  const int hb = static_cast<int>(cfg_.num_layers) + 1;
  embed_ = add_tensor(p + "embed_tokens.weight", {V, C}, 0, TensorRole::Embedding);
  token_embedding_id_ = embed_;
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const int b = static_cast<int>(l) + 1;
    const std::string h = p + "layers." + std::to_string(l) + ".";
    auto mat = [&](const std::string& n, Shape s) { return add_tensor(h + n, std::move(s), b, TensorRole::Matrix); };
    auto bias = [&](bool on, const std::string& n, int64_t len) {
      return on ? add_tensor(h + n, {len}, b, TensorRole::Bias) : -1;
    };
    Layer L;
    L.in_norm = add_tensor(h + "input_layernorm.weight", {C}, b, TensorRole::Norm);
    L.q_w = mat("self_attn.q_proj.weight", {Hq * D, C});
    L.q_b = bias(opt_.attention_bias, "self_attn.q_proj.bias", Hq * D);
    L.k_w = mat("self_attn.k_proj.weight", {Hkv * D, C});
    L.k_b = bias(opt_.attention_bias, "self_attn.k_proj.bias", Hkv * D);
    L.v_w = mat("self_attn.v_proj.weight", {Hkv * D, C});
    L.v_b = bias(opt_.attention_bias, "self_attn.v_proj.bias", Hkv * D);
    L.o_w = mat("self_attn.o_proj.weight", {C, Hq * D});
    L.o_b = bias(opt_.attention_bias, "self_attn.o_proj.bias", C);
    L.q_norm = opt_.qk_norm ? add_tensor(h + "self_attn.q_norm.weight", {D}, b, TensorRole::Norm) : -1;
    L.k_norm = opt_.qk_norm ? add_tensor(h + "self_attn.k_norm.weight", {D}, b, TensorRole::Norm) : -1;
    L.post_norm = add_tensor(h + "post_attention_layernorm.weight", {C}, b, TensorRole::Norm);
    L.gate_w = mat("mlp.gate_proj.weight", {I, C});
    L.gate_b = bias(opt_.mlp_bias, "mlp.gate_proj.bias", I);
    L.up_w = mat("mlp.up_proj.weight", {I, C});
    L.up_b = bias(opt_.mlp_bias, "mlp.up_proj.bias", I);
    L.down_w = mat("mlp.down_proj.weight", {C, I});
    L.down_b = bias(opt_.mlp_bias, "mlp.down_proj.bias", C);
    layers_.push_back(L);
  }
  norm_ = add_tensor(p + "norm.weight", {C}, hb, TensorRole::Norm);
  head_weight_id_ = cfg_.tie_word_embeddings ? embed_ : add_tensor("lm_head.weight", {V, C}, hb, TensorRole::Matrix);
}

int64_t RmsRopeDecoder::scratch_floats(int64_t rows) const {
  const int64_t C = cfg_.hidden_size, qd = cfg_.num_heads * cfg_.head_dim, kvd = cfg_.kv_dim();
  return rows * (C + qd + 2 * kvd + qd + 2 * opt_.intermediate_size);
}

void RmsRopeDecoder::embed(ParamPtrs w, const ForwardInput& in, Activations& a) const {
  const int64_t C = cfg_.hidden_size, R = in.B * in.T;
  blocks::gather_rows(w[embed_], cfg_.vocab_size, C, in.ids, R, blocks::ensure(a.x, R * C));
}

void RmsRopeDecoder::layer(int64_t l, ParamPtrs w, const ForwardInput& in, Activations& a,
                           KVCache* cache) const {
  const Layer& L = layers_[static_cast<std::size_t>(l)];
  const int64_t C = cfg_.hidden_size, R = in.B * in.T, D = cfg_.head_dim;
  const int64_t qd = cfg_.num_heads * D, kvd = cfg_.kv_dim(), I = opt_.intermediate_size;
  auto wb = [&](int id) { return id >= 0 ? w[id] : nullptr; };
  float* x = a.x.data();
  float* h = blocks::ensure(*a.scratch, scratch_floats(R));
  float* q = h + R * C;
  float* k = q + R * qd;
  float* v = k + R * kvd;
  float* att = v + R * kvd;
  float* gate = att + R * qd;
  float* up = gate + R * I;

  kernels::rms_norm(x, w[L.in_norm], h, R, C, opt_.rms_eps);
  blocks::linear(h, R, C, w[L.q_w], qd, wb(L.q_b), q, Layout::OutIn);
  blocks::linear(h, R, C, w[L.k_w], kvd, wb(L.k_b), k, Layout::OutIn);
  blocks::linear(h, R, C, w[L.v_w], kvd, wb(L.v_b), v, Layout::OutIn);
  if (opt_.qk_norm) {
    kernels::rms_norm(q, w[L.q_norm], q, R * cfg_.num_heads, D, opt_.rms_eps);
    kernels::rms_norm(k, w[L.k_norm], k, R * cfg_.num_kv_heads, D, opt_.rms_eps);
  }
  kernels::rope_inplace(q, R, qd, cfg_.num_heads, D, in.positions, opt_.inv_freq.data());
  kernels::rope_inplace(k, R, kvd, cfg_.num_kv_heads, D, in.positions, opt_.inv_freq.data());
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  blocks::self_attention({&cfg_, &in, cache, l, scale}, q, qd, k, v, kvd, att, *a.attn);
  blocks::linear(att, R, qd, w[L.o_w], C, wb(L.o_b), h, Layout::OutIn);
  kernels::add_inplace(x, h, R * C);

  kernels::rms_norm(x, w[L.post_norm], h, R, C, opt_.rms_eps);
  blocks::linear(h, R, C, w[L.gate_w], I, wb(L.gate_b), gate, Layout::OutIn);
  blocks::linear(h, R, C, w[L.up_w], I, wb(L.up_b), up, Layout::OutIn);
  kernels::silu_mul(gate, up, gate, R * I);
  blocks::linear(gate, R, I, w[L.down_w], C, wb(L.down_b), h, Layout::OutIn);
  kernels::add_inplace(x, h, R * C);
}

void RmsRopeDecoder::final_hidden(ParamPtrs w, const Activations& a, const int64_t* rows, int64_t nrows,
                                  float* hidden) const {
  const int64_t C = cfg_.hidden_size;
  for (int64_t i = 0; i < nrows; ++i)
    kernels::rms_norm(a.x.data() + rows[i] * C, w[norm_], hidden + i * C, 1, C, opt_.rms_eps);
}

}  // namespace zotune
