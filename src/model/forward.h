// One forward pass over a batch, block by block. The trainer drives two of these
// (the +eps and -eps passes) through the same resident block; inference drives
// one through all blocks. Buffers are allocated once for the largest shape seen.
#pragma once
#include <cstdint>
#include <vector>

#include "model/architecture.h"

namespace zotune {

class ForwardPass {
 public:
  explicit ForwardPass(const Architecture& arch) : arch_(arch) {}

  // A new batch of B full sequences of T tokens (mask: 1 = real; null = all real).
  void start(const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T);
  // Incremental decoding: T new tokens per sequence appended after cache->length.
  // `mask` covers the new tokens; positions continue each sequence's count of real tokens.
  void start_cached(const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T, KVCache& cache);
  // T new tokens per sequence after a prefix someone else put in the first
  // cache.length slots of `cache` (model/shared_prefix.h): slots [0,
  // prefix_len[b]) of sequence b are its real prefix tokens, the rest of those
  // slots are padding; positions continue from prefix_len[b].
  void start_continuation(const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T, KVCache& cache,
                          const int64_t* prefix_len);

  // Block 0 = embeddings, 1..L = layers. The head block is run by logits().
  void run_block(int block, ParamPtrs w);
  void run_body(ParamPtrs w);  // all blocks but the head

  // The hidden states [nrows, arch.head_width()] that enter the lm_head, of the
  // given rows (indices into B*T): the head block but its GEMM. Valid until the next call.
  const float* head_hidden(ParamPtrs w, const int64_t* rows, int64_t nrows);
  // logits [nrows, V] of the given rows (indices into B*T) after the head block.
  void logits(ParamPtrs w, const int64_t* rows, int64_t nrows, float* out);
  void all_logits(ParamPtrs w, float* out);  // every row, [B*T, V]

  // Use `other`'s block scratch: for passes whose blocks never run at the same time.
  void share_scratch(const ForwardPass& other) {
    act_.scratch = other.act_.scratch;
    act_.attn = other.act_.attn;
  }

  int64_t B() const { return in_.B; }
  int64_t T() const { return in_.T; }
  const Architecture& arch() const { return arch_; }
  // After a cached step: advance the cache past the new tokens.
  void commit_cache();

 private:
  void place_new_tokens(const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T, KVCache& cache);

  const Architecture& arch_;
  ForwardInput in_;
  KVCache* cache_ = nullptr;
  Activations act_;
  std::vector<int32_t> ids_;
  std::vector<uint8_t> mask_;
  std::vector<int64_t> positions_;
  std::vector<uint8_t> key_valid_;    // no cache: [B*T]
  std::vector<uint8_t> cache_valid_;  // with cache: [B*capacity], persists across steps
  std::vector<int64_t> cache_seen_;   // with cache: real tokens so far per sequence
  std::vector<int64_t> all_rows_;
  AlignedBuffer<float> hidden_;
};

// The lm_head GEMM: logits [nrows, V] of hidden rows [nrows, arch.head_width()].
void head_logits(const Architecture& arch, ParamPtrs w, const float* hidden, int64_t nrows, float* out);

// Bytes a ForwardPass allocates for B x T tokens and `head_rows` rows entering
// the lm_head (start, run_block, head_hidden): its own residual stream and head
// hidden rows, and the block and attention scratch a second pass can share
// (share_scratch). `threads`: the compute threads (attention scratch is per thread).
struct PassFootprint {
  uint64_t own = 0, shared = 0;
};
PassFootprint forward_pass_footprint(const Architecture& arch, int64_t B, int64_t T, int64_t head_rows, int threads);
// FLOPs of one forward over B sequences of T tokens with logits for
// `head_rows` of them (-1: every token): 2·rows·(in·out) per weight matrix
// (the embedding lookups not counted) plus causal attention, 2·D·T·(T+1) per
// head and sequence. A multiply-add counts 2, as in GEMM peak figures.
double forward_flops(const Architecture& arch, int64_t B, int64_t T, int64_t head_rows = -1);

// Mean next-token cross-entropy: position t predicts ids[t+1]; counted where both
// mask[t] and mask[t+1] are 1 (HF: labels = input_ids with padding -100). Returns
// 0 if no position counts. logits: [B*T, V].
double next_token_loss(const float* logits, const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T,
                       int64_t V);

}  // namespace zotune
