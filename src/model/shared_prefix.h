// Each prompt once: sequences that begin with the same tokens (an example's
// candidates: prompt ++ candidate k) share the forward of those tokens.
//
// Per block, one pass runs
//   prefix:  G group heads [G, Lp] (Lp = the longest shared head), a plain
//            causal forward whose keys/values land in a one-layer KV cache;
//   tail:    each sequence's remaining tokens [B, Tt], after its group's
//            head: the head's keys/values are copied into the tail's cache
//            (slots [0, Lp), valid up to the group's shared length) and the
//            tail runs as a cached step (ForwardPass::start_continuation), as
//            generation's incremental decoding does.
// Only layer l's keys/values are held while layer l runs (the block-streamed
// trainer runs one block at a time), so a pass needs one layer of cache, and
// two passes that run their blocks in turn (the trainer's plus and minus
// passes) share it along with the block scratch.
//
// A row of the [B, T] grid maps to a head row when it lies in the shared head
// (the rows of a group's sequences there are the same computation, by
// causality) and to a tail row otherwise, so head_hidden / logits take rows of
// the unshared batch. Tokens after a sequence's last needed row influence no
// needed row and are not computed.
//
// The results equal the unshared forward up to float rounding (the GEMMs see
// other shapes); a layout with groups == 0 runs the plain ForwardPass, bit for
// bit the unshared computation.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/forward.h"

namespace zotune {

// How B right-padded sequences of T tokens share their heads.
struct PrefixLayout {
  int64_t groups = 0;           // G; 0 = no sharing
  std::vector<int32_t> group;   // [B] the group of each sequence
  std::vector<int64_t> shared;  // [G] real tokens every (needed) sequence of the group begins with
  std::vector<int64_t> needed;  // [B] tokens of sequence b whose rows may be asked for
  int64_t head_T = 0, tail_T = 0;  // Lp = max shared, Tt = max(needed - shared)
};

// The layout of sequences grouped by `group` ([B], ids 0..G-1, e.g. each
// candidate's example) of which only the first needed[b] tokens matter
// (needed[b] = 1 + the last row that will be read; 0 = none): each group
// shares the real tokens all its sequences begin with, at most its shortest
// needed length. groups == 0 when that would not compute fewer token rows
// (G·Lp + B·Tt) than the plain batch (B·T), or Lp + Tt > T.
PrefixLayout plan_prefix_sharing(const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T, const int32_t* group,
                                 const int64_t* needed);

class SharedPrefixPass {
 public:
  explicit SharedPrefixPass(const Architecture& arch);

  // B right-padded sequences of T tokens (mask: 1 = real; null = all real);
  // `layout` null or without groups: a plain forward. The layout is copied.
  void start(const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T, const PrefixLayout* layout);
  // Block 0 = embeddings, 1..L = layers (ForwardPass::run_block).
  void run_block(int block, ParamPtrs w);
  void run_body(ParamPtrs w);
  // As ForwardPass: rows index the [B*T] grid (a shared row: t < needed[b]).
  const float* head_hidden(ParamPtrs w, const int64_t* rows, int64_t nrows);
  void logits(ParamPtrs w, const int64_t* rows, int64_t nrows, float* out);

  // Use `other`'s block scratch and KV caches: for passes whose blocks never run at the same time.
  void share_scratch(const SharedPrefixPass& other);
  bool sharing() const { return lay_.groups > 0; }

 private:
  const Architecture& arch_;
  ForwardPass head_, tail_;
  std::shared_ptr<KVCache> head_kv_, tail_kv_;
  PrefixLayout lay_;
  int64_t B_ = 0, T_ = 0;
  std::vector<int32_t> head_ids_, tail_ids_;
  std::vector<uint8_t> head_mask_, tail_mask_;
  std::vector<int64_t> tail_prefix_;  // [B] shared[group[b]]
  std::vector<int64_t> rows_[2], at_[2];
  AlignedBuffer<float> hidden_;
};

// Bytes a SharedPrefixPass allocates for B x T tokens (layouts planned by
// plan_prefix_sharing, which never computes more rows than B·T and keeps
// Lp + Tt <= T): the plain pass's, plus a tail residual stream and head rows,
// and the two one-layer KV caches (shared with a second pass).
PassFootprint shared_prefix_pass_footprint(const Architecture& arch, int64_t B, int64_t T, int64_t head_rows,
                                           int threads);

}  // namespace zotune
