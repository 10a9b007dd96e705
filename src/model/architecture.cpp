#include "model/architecture.h"

#include <array>
#include <cmath>

#include "base/error.h"

namespace zotune {

namespace {
using Factory = std::unique_ptr<Architecture> (*)(const Json&, const std::string&);
struct Entry {
  const char* model_type;
  Factory make;
  Json (*preset)(const std::string&);
  const char* presets;
};
// The registry: the only place that lists architectures.
constexpr std::array<Entry, 4> kRegistry{{
    {"gpt2", &make_gpt2, &preset_gpt2, "tiny, gpt2-124m"},
    {"opt", &make_opt, &preset_opt, "tiny, opt-125m"},
    {"llama", &make_llama, &preset_llama, "tiny, llama-3.2-1b"},
    {"qwen3", &make_qwen3, &preset_qwen3, "tiny, qwen3-0.6b"},
}};
}  // namespace

KVCache::KVCache(int64_t layers, int64_t B_, int64_t capacity_, int64_t kv_dim_)
    : B(B_), capacity(capacity_), kv_dim(kv_dim_) {
  k.resize(static_cast<std::size_t>(layers));
  v.resize(static_cast<std::size_t>(layers));
  for (auto& b : k) b.reset(static_cast<std::size_t>(B * capacity * kv_dim));
  for (auto& b : v) b.reset(static_cast<std::size_t>(B * capacity * kv_dim));
}

void KVCache::reshape(int64_t B_, int64_t capacity_) {
  B = B_;
  capacity = capacity_;
  length = 0;
  const auto n = static_cast<std::size_t>(B * capacity * kv_dim);
  for (auto* bufs : {&k, &v})
    for (auto& b : *bufs) b.reset(n);  // reallocates only when growing
}

int Architecture::add_tensor(std::string name, Shape shape, int block, TensorRole role) {
  tensors_.push_back({std::move(name), std::move(shape), block, role});
  return static_cast<int>(tensors_.size()) - 1;
}

std::vector<std::string> known_architectures() {
  std::vector<std::string> r;
  for (auto& e : kRegistry) r.emplace_back(e.model_type);
  return r;
}

std::unique_ptr<Architecture> make_architecture(const Json& config, const std::string& file) {
  if (!config.is_object()) fail(file, ": config is not a JSON object");
  JsonFields f(config, file);
  std::string type = f.req<std::string>("model_type");
  for (auto& e : kRegistry)
    if (type == e.model_type) return e.make(config, file);
  std::string known;
  for (auto& e : kRegistry) known += std::string(known.empty() ? "" : ", ") + e.model_type;
  fail(file, ": field 'model_type': unsupported architecture '", type, "' (supported: ", known, ")");
}

Json architecture_preset(const std::string& model_type, const std::string& preset) {
  for (auto& e : kRegistry) {
    if (model_type != e.model_type) continue;
    Json j = e.preset(preset);
    if (j.is_null()) fail("unknown preset '", preset, "' for --arch ", model_type, " (known: ", e.presets, ")");
    return j;
  }
  std::string known;
  for (auto& e : kRegistry) known += std::string(known.empty() ? "" : ", ") + e.model_type;
  fail("unknown architecture '", model_type, "' (supported: ", known, ")");
}

std::unique_ptr<Architecture> load_architecture(const std::filesystem::path& path) {
  auto file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  if (!std::filesystem::exists(file)) fail(file.string(), ": no such file (a model directory needs config.json)");
  return make_architecture(read_json_file(file), file.string());
}

namespace {
std::vector<int32_t> read_token_ids(const JsonFields& f, const std::string& key) {
  std::vector<int32_t> r;
  if (!f.has(key)) return r;
  const Json& v = f.raw()[key];
  if (v.is_number_integer()) {
    r.push_back(v.get<int32_t>());
  } else if (v.is_array()) {
    for (auto& e : v) {
      if (!e.is_number_integer()) fail(f.file(), ": field '", key, "' must hold integers");
      r.push_back(e.get<int32_t>());
    }
  } else {
    fail(f.file(), ": field '", key, "' must be an integer or a list of integers");
  }
  return r;
}
}  // namespace

void read_common_config(const JsonFields& f, ModelConfig& cfg) {
  cfg.json = f.raw();
  cfg.file = f.file();
  cfg.model_type = f.req<std::string>("model_type");
  if (f.has("architectures")) {
    const Json& a = f.raw()["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string())
      fail(f.file(), ": field 'architectures' must be a list of class names");
    cfg.hf_architecture = a[0].get<std::string>();
  }
  if (f.has("torch_dtype")) {
    auto s = f.req<std::string>("torch_dtype");
    cfg.torch_dtype = dtype_from_cli(s);
    if (!cfg.torch_dtype) fail(f.file(), ": field 'torch_dtype': unsupported dtype '", s, "'");
  }
  auto bos = read_token_ids(f, "bos_token_id");
  if (!bos.empty()) cfg.bos_token_id = bos[0];
  auto pad = read_token_ids(f, "pad_token_id");
  if (!pad.empty()) cfg.pad_token_id = pad[0];
  cfg.eos_token_ids = read_token_ids(f, "eos_token_id");
}

}  // namespace zotune

namespace zotune {

int64_t checked_size(const JsonFields& f, const char* key, int64_t v, int64_t max) {
  if (v <= 0) fail(f.file(), ": field '", key, "' must be positive (got ", v, ")");
  if (v > max) fail(f.file(), ": field '", key, "' = ", v, " is beyond the supported limit ", max);
  return v;
}

void state_assumed(ModelConfig& cfg, const char* key, const Json& value) {
  if (!cfg.json.contains(key) || cfg.json[key].is_null()) cfg.json[key] = value;
}

double checked_positive(const JsonFields& f, const char* key, double v) {
  if (!(v > 0) || !std::isfinite(v)) fail(f.file(), ": field '", key, "' must be a finite number > 0 (got ", v, ")");
  return v;
}

void read_shape_config(const JsonFields& f, const ShapeFieldNames& n, ModelConfig& cfg) {
  read_common_config(f, cfg);
  using L = ConfigLimits;
  cfg.vocab_size = checked_size(f, "vocab_size", f.req<int64_t>("vocab_size"), L::vocab);
  cfg.hidden_size = checked_size(f, n.hidden, f.req<int64_t>(n.hidden), L::width);
  cfg.num_layers = checked_size(f, n.layers, f.req<int64_t>(n.layers), L::layers);
  cfg.num_heads = checked_size(f, n.heads, f.req<int64_t>(n.heads), L::heads);
  cfg.num_kv_heads =
      n.kv_heads ? checked_size(f, n.kv_heads, f.opt<int64_t>(n.kv_heads, cfg.num_heads), L::heads) : cfg.num_heads;
  cfg.max_positions = n.max_positions_required
                          ? checked_size(f, n.max_positions, f.req<int64_t>(n.max_positions), L::positions)
                          : f.opt<int64_t>(n.max_positions, 0);
  if (!n.max_positions_required && cfg.max_positions != 0)
    checked_size(f, n.max_positions, cfg.max_positions, L::positions);
  cfg.tie_word_embeddings = f.opt<bool>("tie_word_embeddings", n.tied_by_default);
  state_assumed(cfg, "tie_word_embeddings", cfg.tie_word_embeddings);
  if (n.kv_heads) state_assumed(cfg, n.kv_heads, cfg.num_kv_heads);
}

}  // namespace zotune
