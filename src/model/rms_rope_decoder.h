// The decoder shared by LLaMA-style architectures (llama.cpp, qwen3.cpp):
// RMSNorm pre-norm blocks, RoPE (rotate_half) with optional scaling, grouped-query
// attention, SwiGLU MLP, optional per-head q/k RMSNorm (Qwen3). Each architecture
// file parses its own config into RmsRopeOptions and names its tensors.
#pragma once
#include <string>
#include <vector>

#include "model/architecture.h"

namespace zotune {

struct RmsRopeOptions {
  int64_t intermediate_size = 0;
  float rms_eps = 1e-6f;
  std::vector<float> inv_freq;  // head_dim / 2 entries, scaling already applied
  bool attention_bias = false;
  bool mlp_bias = false;
  bool qk_norm = false;  // Qwen3
};

// Reads rope_theta / rope_scaling (or the newer rope_parameters) and returns the
// inverse frequencies as HF computes them in fp32. Supports rope types
// "default", "linear" and "llama3"; anything else is an error naming the field.
std::vector<float> read_rope_inv_freq(const JsonFields& f, int64_t head_dim, double default_theta);

class RmsRopeDecoder : public Architecture {
 public:
  int64_t scratch_floats(int64_t rows) const override;
  void embed(ParamPtrs w, const ForwardInput& in, Activations& a) const override;
  void layer(int64_t l, ParamPtrs w, const ForwardInput& in, Activations& a,
             KVCache* cache) const override;
  void final_hidden(ParamPtrs w, const Activations& a, const int64_t* rows, int64_t nrows,
                    float* hidden) const override;

 protected:
  // Reads the fields LLaMA-style configs share (shape, head_dim, intermediate_size,
  // rms_norm_eps, attention_bias, mlp_bias when `mlp_bias_field`, rope).
  RmsRopeOptions read_config(const JsonFields& f, const char* hf_architecture, int64_t default_head_dim,
                             bool mlp_bias_field);
  // Builds the tensor table under "model.".
  void build(const JsonFields& f, RmsRopeOptions opt);

 private:
  struct Layer {
    int in_norm, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, q_norm, k_norm, post_norm, gate_w, gate_b, up_w,
        up_b, down_w, down_b;
  };
  RmsRopeOptions opt_;
  int embed_ = -1, norm_ = -1;
  std::vector<Layer> layers_;
};

}  // namespace zotune
