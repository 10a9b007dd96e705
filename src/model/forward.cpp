#include "model/forward.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/error.h"
#include "kernels/kernels.h"
#include "model/blocks.h"

namespace zotune {

void ForwardPass::start(const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T) {
  const int64_t R = B * T;
  ids_.assign(ids, ids + R);
  if (mask) mask_.assign(mask, mask + R);
  else mask_.assign(static_cast<std::size_t>(R), 1);
  positions_.resize(static_cast<std::size_t>(R));
  blocks::positions_from_mask(mask_.data(), B, T, positions_.data());
  key_valid_ = mask_;
  cache_ = nullptr;
  in_ = ForwardInput{B, T, ids_.data(), positions_.data(), key_valid_.data(), T, 0, mask_.data()};
}

void ForwardPass::start_cached(const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T, KVCache& cache) {
  check(cache.B == B, "KV cache holds ", cache.B, " sequences, the batch has ", B);
  check(cache.length + T <= cache.capacity, "KV cache full: ", cache.length, " + ", T, " > ", cache.capacity);
  if (cache.length == 0 || cache_ != &cache) {
    cache_valid_.assign(static_cast<std::size_t>(B * cache.capacity), 0);
    cache_seen_.assign(static_cast<std::size_t>(B), 0);
    check(cache.length == 0, "a KV cache must be filled by the pass that owns it");
  }
  place_new_tokens(ids, mask, B, T, cache);
}

void ForwardPass::start_continuation(const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T, KVCache& cache,
                                     const int64_t* prefix_len) {
  check(cache.B == B, "KV cache holds ", cache.B, " sequences, the batch has ", B);
  check(cache.length + T <= cache.capacity, "KV cache full: ", cache.length, " + ", T, " > ", cache.capacity);
  cache_valid_.assign(static_cast<std::size_t>(B * cache.capacity), 0);
  cache_seen_.assign(prefix_len, prefix_len + B);
  for (int64_t b = 0; b < B; ++b) {
    check(prefix_len[b] >= 0 && prefix_len[b] <= cache.length, "sequence ", b, ": a prefix of ", prefix_len[b],
          " tokens in a cache of ", cache.length);
    std::fill_n(cache_valid_.begin() + b * cache.capacity, prefix_len[b], uint8_t{1});
  }
  place_new_tokens(ids, mask, B, T, cache);
}

void ForwardPass::place_new_tokens(const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T, KVCache& cache) {
  cache_ = &cache;
  const int64_t R = B * T;
  ids_.assign(ids, ids + R);
  if (mask) mask_.assign(mask, mask + R);
  else mask_.assign(static_cast<std::size_t>(R), 1);
  positions_.resize(static_cast<std::size_t>(R));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const std::size_t r = static_cast<std::size_t>(b * T + t);
      const bool real = mask_[r] != 0;
      positions_[r] = real ? cache_seen_[static_cast<std::size_t>(b)] : 1;
      if (real) ++cache_seen_[static_cast<std::size_t>(b)];
      cache_valid_[static_cast<std::size_t>(b * cache.capacity + cache.length + t)] = real ? 1 : 0;
    }
  in_ = ForwardInput{B, T, ids_.data(), positions_.data(), cache_valid_.data(), cache.capacity, cache.length,
                     mask_.data()};
}

PassFootprint forward_pass_footprint(const Architecture& arch, int64_t B, int64_t T, int64_t head_rows, int threads) {
  const auto& c = arch.config();
  const int64_t R = B * T;
  kernels::AttentionShape as{B, T, T, c.num_heads, std::max<int64_t>(c.num_kv_heads, 1), c.head_dim, 0, 0, 0, 0, 1.0f};
  PassFootprint f;
  f.own = static_cast<uint64_t>(R * c.hidden_size + head_rows * arch.head_width()) * sizeof(float);  // act_.x, hidden_
  f.shared = static_cast<uint64_t>(arch.scratch_floats(R) + kernels::attention_scratch_floats(as, threads)) * sizeof(float);
  return f;
}

void ForwardPass::commit_cache() {
  if (cache_) cache_->length += in_.T;
}

void ForwardPass::run_block(int block, ParamPtrs w) {
  const int L = static_cast<int>(arch_.config().num_layers);
  check(block >= 0 && block <= L, "block ", block, " is not a body block (0..", L, ")");
  if (block == 0) arch_.embed(w, in_, act_);
  else arch_.layer(block - 1, w, in_, act_, cache_);
}

void ForwardPass::run_body(ParamPtrs w) {
  for (int b = 0; b <= static_cast<int>(arch_.config().num_layers); ++b) run_block(b, w);
}

const float* ForwardPass::head_hidden(ParamPtrs w, const int64_t* rows, int64_t nrows) {
  float* hidden = blocks::ensure(hidden_, nrows * arch_.head_width());
  arch_.final_hidden(w, act_, rows, nrows, hidden);
  return hidden;
}

void ForwardPass::logits(ParamPtrs w, const int64_t* rows, int64_t nrows, float* out) {
  head_logits(arch_, w, head_hidden(w, rows, nrows), nrows, out);
}

void head_logits(const Architecture& arch, ParamPtrs w, const float* hidden, int64_t nrows, float* out) {
  blocks::linear(hidden, nrows, arch.head_width(), w[static_cast<std::size_t>(arch.head_weight_id())],
                 arch.config().vocab_size, nullptr, out, blocks::Layout::OutIn);
}

void ForwardPass::all_logits(ParamPtrs w, float* out) {
  all_rows_.resize(static_cast<std::size_t>(in_.B * in_.T));
  std::iota(all_rows_.begin(), all_rows_.end(), int64_t{0});
  logits(w, all_rows_.data(), static_cast<int64_t>(all_rows_.size()), out);
}

double forward_flops(const Architecture& arch, int64_t B, int64_t T, int64_t head_rows) {
  const ModelConfig& c = arch.config();
  const double rows = static_cast<double>(B * T);
  const double head = static_cast<double>(head_rows < 0 ? B * T : head_rows) * static_cast<double>(c.vocab_size * arch.head_width());
  double matrix_params = 0;
  const auto& specs = arch.tensors();
  for (std::size_t id = 0; id < specs.size(); ++id)
    if (specs[id].role == TensorRole::Matrix && static_cast<int>(id) != arch.head_weight_id())
      matrix_params += static_cast<double>(specs[id].numel());
  const double attention = static_cast<double>(c.num_layers * B * c.num_heads) * 2.0 * static_cast<double>(c.head_dim) *
                           static_cast<double>(T) * static_cast<double>(T + 1);
  return 2.0 * (rows * matrix_params + head) + attention;
}

double next_token_loss(const float* logits, const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T,
                       int64_t V) {
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t)
      if (!mask || (mask[b * T + t] && mask[b * T + t + 1])) rows.push_back(b * T + t);
  if (rows.empty()) return 0.0;
  std::vector<float> lse(rows.size());
  double sum = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const float* row = logits + rows[i] * V;
    kernels::logsumexp_rows(row, 1, V, &lse[i]);
    const int32_t target = ids[rows[i] + 1];
    check(target >= 0 && target < V, "token id ", target, " is outside the vocabulary [0, ", V, ")");
    sum += static_cast<double>(lse[i]) - static_cast<double>(row[target]);
  }
  return sum / static_cast<double>(rows.size());
}

}  // namespace zotune
