// The fixed interface every architecture implements, one file per architecture
// (gpt2.cpp, opt.cpp, llama.cpp, qwen3.cpp). Shared code never switches on the
// architecture: it walks the tensor table and calls these virtuals.
//
// Dimension letters: B batch, T new tokens per sequence, Tk keys per sequence
// (T without a cache, the cache capacity with one), C hidden size, V vocabulary,
// Hq/Hkv query/key-value heads, D head size.
//
// A model is a sequence of blocks that the trainer streams through the tiers:
// block 0 = embeddings (+ OPT project_in), blocks 1..L = decoder layers,
// block L+1 = final norm (+ OPT project_out) + untied lm_head. The token
// embedding and the lm_head weight (the same tensor when tied) are the
// trainer's streamed tensors: it reads them in chunks of rows, never whole
// (see train/engine.h); inference reads them as ordinary tensors.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "io/json_file.h"
#include "tensor/tensor.h"

namespace zotune {

enum class TensorRole : uint8_t { Matrix, Embedding, Bias, Norm };

struct TensorSpec {
  std::string name;  // as save_pretrained writes it
  Shape shape;
  int block = 0;
  TensorRole role = TensorRole::Matrix;
  // MeZO's rule: weight decay on everything but biases and norm weights.
  bool decays() const { return role == TensorRole::Matrix || role == TensorRole::Embedding; }
  int64_t numel() const { return zotune::numel(shape); }
};

// Fields shared code needs; architecture-specific fields live in the architecture.
struct ModelConfig {
  std::string model_type;       // "gpt2", "opt", "llama", "qwen3"
  std::string hf_architecture;  // "GPT2LMHeadModel", ...
  std::string base_prefix;      // "transformer." / "model." : optional in checkpoints of the base model
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;      // width of the residual stream
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_positions = 0;    // 0 = unbounded (RoPE)
  bool tie_word_embeddings = false;
  std::optional<DType> torch_dtype;
  std::optional<int32_t> bos_token_id, pad_token_id;
  std::vector<int32_t> eos_token_ids;
  Json json;                    // config.json as read, written back on save
  std::string file;             // where it came from (for messages)
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
};

// Per-layer K/V for incremental decoding: k[l], v[l] are [B, capacity, Hkv*D];
// RoPE is already applied to cached keys. A cache of one layer serves every
// layer in turn (keys(l) is k[0]): for passes run block by block whose layer
// l's keys are used before layer l + 1 runs (model/shared_prefix.h).
struct KVCache {
  int64_t B = 0, capacity = 0, kv_dim = 0;
  int64_t length = 0;  // filled positions per sequence (same for every sequence)
  std::vector<AlignedBuffer<float>> k, v;
  KVCache(int64_t layers, int64_t B, int64_t capacity, int64_t kv_dim);
  float* keys(int64_t layer) { return k[k.size() == 1 ? 0 : static_cast<std::size_t>(layer)].data(); }
  float* values(int64_t layer) { return v[v.size() == 1 ? 0 : static_cast<std::size_t>(layer)].data(); }
  // New shape, length 0; the buffers grow only when they are too small.
  void reshape(int64_t B, int64_t capacity);
};

// One forward call: T new tokens per sequence.
struct ForwardInput {
  int64_t B = 0, T = 0;
  const int32_t* ids = nullptr;        // [B*T]
  const int64_t* positions = nullptr;  // [B*T] position id of each new token
  const uint8_t* key_valid = nullptr;  // [B*Tk] 1 = a real token
  int64_t Tk = 0;                      // keys per sequence (T, or the cache capacity)
  int64_t q_offset = 0;                // key index of the first new token (cache length)
  const uint8_t* token_mask = nullptr; // [B*T] attention mask of the new tokens (OPT positions)
};

// Activations of one pass, allocated once for the largest shape and reused.
// Only x lives from one block to the next; scratch and attn are free between
// block calls, so passes that run their blocks in turn (the trainer's plus and
// minus passes) share them (ForwardPass::share_scratch).
struct Activations {
  AlignedBuffer<float> x;  // [B*T, C] residual stream
  std::shared_ptr<AlignedBuffer<float>> scratch = std::make_shared<AlignedBuffer<float>>();  // architecture-defined carve-up
  std::shared_ptr<AlignedBuffer<float>> attn = std::make_shared<AlignedBuffer<float>>();     // attention kernel scratch
};

// Pointers to fp32 working copies of every parameter, indexed by tensor id
// (position in the tensor table). The trainer swaps in W+ or W- pointers.
using ParamPtrs = std::span<const float* const>;

class Architecture {
 public:
  virtual ~Architecture() = default;
  const ModelConfig& config() const { return cfg_; }
  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  int num_blocks() const { return static_cast<int>(cfg_.num_layers) + 2; }
  // Tensor id of the weight the lm_head multiplies with (the embedding if tied).
  int head_weight_id() const { return head_weight_id_; }
  // Tensor id of the token embedding [V, width] (block 0).
  int token_embedding_id() const { return token_embedding_id_; }

  // Floats of scratch a forward over `rows` = B*T new tokens needs.
  virtual int64_t scratch_floats(int64_t rows) const = 0;
  // Width of the hidden state that enters the lm_head (OPT: word_embed_proj_dim).
  virtual int64_t head_width() const { return cfg_.hidden_size; }

  // block 0: token (+ position) embeddings into a.x
  virtual void embed(ParamPtrs w, const ForwardInput& in, Activations& a) const = 0;
  // blocks 1..L (layer l = block - 1); `cache` null for a full forward
  virtual void layer(int64_t l, ParamPtrs w, const ForwardInput& in, Activations& a,
                     KVCache* cache) const = 0;
  // block L+1, first half: final norm (+ projection) of the selected rows of a.x
  // into `hidden` [nrows, head_width()]. The lm_head GEMM is shared (see forward.h).
  virtual void final_hidden(ParamPtrs w, const Activations& a, const int64_t* rows, int64_t nrows,
                            float* hidden) const = 0;

 protected:
  ModelConfig cfg_;
  std::vector<TensorSpec> tensors_;
  int head_weight_id_ = -1;
  int token_embedding_id_ = -1;
  int add_tensor(std::string name, Shape shape, int block, TensorRole role);
};

// Reads `dir/config.json` (or a config.json path) and builds the architecture.
// Unknown model_type or unsupported options are errors naming the file and field.
std::unique_ptr<Architecture> load_architecture(const std::filesystem::path& config_path);
std::unique_ptr<Architecture> make_architecture(const Json& config, const std::string& file);
// Known model_type names, in the order of the registry.
std::vector<std::string> known_architectures();

// Factories, one per architecture file; the registry (architecture.cpp) lists them.
std::unique_ptr<Architecture> make_gpt2(const Json& config, const std::string& file);
std::unique_ptr<Architecture> make_opt(const Json& config, const std::string& file);
std::unique_ptr<Architecture> make_llama(const Json& config, const std::string& file);
std::unique_ptr<Architecture> make_qwen3(const Json& config, const std::string& file);

// config.json of a named preset of an architecture ("tiny", "gpt2-124m", ...);
// throws listing the known presets if unknown.
Json architecture_preset(const std::string& model_type, const std::string& preset);
Json preset_gpt2(const std::string& name);
Json preset_opt(const std::string& name);
Json preset_llama(const std::string& name);
Json preset_qwen3(const std::string& name);

// Common config fields every architecture reads the same way.
void read_common_config(const JsonFields& f, ModelConfig& cfg);

// Where an architecture's config.json keeps the shape fields.
struct ShapeFieldNames {
  const char* hidden = "hidden_size";
  const char* layers = "num_hidden_layers";
  const char* heads = "num_attention_heads";
  const char* kv_heads = nullptr;  // null: one kv head per query head
  const char* max_positions = "max_position_embeddings";
  bool max_positions_required = false;
  bool tied_by_default = false;    // when tie_word_embeddings is absent
};
// read_common_config + vocab_size, hidden, layers, heads, kv heads, max positions,
// tie_word_embeddings; every count must be positive (errors name the field).
void read_shape_config(const JsonFields& f, const ShapeFieldNames& names, ModelConfig& cfg);

// Sane limits for config sizes, checked before anything is sized from them
// (real models sit far below: the largest have ~128 layers, widths ~3e4, vocabularies ~3e5).
struct ConfigLimits {
  static constexpr int64_t layers = 1024, width = int64_t{1} << 17, inner = int64_t{1} << 20,
                           heads = 4096, vocab = int64_t{1} << 24, positions = int64_t{1} << 24;
};
// v when 1 <= v <= max, else an error naming the file and field.
int64_t checked_size(const JsonFields& f, const char* key, int64_t v, int64_t max);
// Records in cfg.json a value the architecture assumed for an absent (or null)
// field, so the config.json zotune writes states it and never leaves it to the
// reader's default (which may differ between transformers versions).
void state_assumed(ModelConfig& cfg, const char* key, const Json& value);
// v when finite and > 0, else an error naming the file and field.
double checked_positive(const JsonFields& f, const char* key, double v);

}  // namespace zotune
