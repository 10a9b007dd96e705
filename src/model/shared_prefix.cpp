#include "model/shared_prefix.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "model/blocks.h"

namespace zotune {

PrefixLayout plan_prefix_sharing(const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T, const int32_t* group,
                                 const int64_t* needed) {
  PrefixLayout lay;
  int64_t G = 0;
  for (int64_t b = 0; b < B; ++b) {
    check(group[b] >= 0 && group[b] < B, "sequence ", b, ": group ", group[b], " is not in [0, ", B, ")");
    check(needed[b] >= 0 && needed[b] <= T, "sequence ", b, ": ", needed[b], " needed tokens of ", T);
    G = std::max<int64_t>(G, group[b] + 1);
  }
  auto real = [&](int64_t b, int64_t t) { return !mask || mask[b * T + t] != 0; };
  // The first sequence of each group that needs any token stands for it.
  std::vector<int64_t> rep(static_cast<std::size_t>(G), -1), shared(static_cast<std::size_t>(G), T);
  for (int64_t b = 0; b < B; ++b) {
    if (needed[b] == 0) continue;
    const auto g = static_cast<std::size_t>(group[b]);
    if (rep[g] < 0) rep[g] = b;
    int64_t t = 0;
    const int64_t r = rep[g];
    while (t < std::min(shared[g], needed[b]) && real(b, t) && ids[b * T + t] == ids[r * T + t]) ++t;
    shared[g] = t;
  }
  int64_t Lp = 0, Tt = 0;
  for (std::size_t g = 0; g < shared.size(); ++g) {
    if (rep[g] < 0) shared[g] = 0;
    Lp = std::max(Lp, shared[g]);
  }
  for (int64_t b = 0; b < B; ++b)
    Tt = std::max(Tt, needed[b] - shared[static_cast<std::size_t>(group[b])]);
  if (Lp == 0 || G * Lp + B * Tt >= B * T || Lp + Tt > T) return lay;
  lay.groups = G;
  lay.group.assign(group, group + B);
  lay.shared = std::move(shared);
  lay.needed.assign(needed, needed + B);
  lay.head_T = Lp;
  lay.tail_T = Tt;
  return lay;
}

SharedPrefixPass::SharedPrefixPass(const Architecture& arch)
    : arch_(arch),
      head_(arch),
      tail_(arch),
      head_kv_(std::make_shared<KVCache>(1, 0, 0, arch.config().kv_dim())),
      tail_kv_(std::make_shared<KVCache>(1, 0, 0, arch.config().kv_dim())) {
  tail_.share_scratch(head_);  // the head and the tail of a block run in turn
}

void SharedPrefixPass::share_scratch(const SharedPrefixPass& other) {
  head_.share_scratch(other.head_);
  tail_.share_scratch(other.head_);
  head_kv_ = other.head_kv_;
  tail_kv_ = other.tail_kv_;
}

void SharedPrefixPass::start(const int32_t* ids, const uint8_t* mask, int64_t B, int64_t T,
                             const PrefixLayout* layout) {
  B_ = B;
  T_ = T;
  if (!layout || layout->groups == 0) {
    lay_ = PrefixLayout{};
    head_.start(ids, mask, B, T);
    return;
  }
  lay_ = *layout;
  const int64_t G = lay_.groups, Lp = lay_.head_T, Tt = lay_.tail_T;
  check(static_cast<int64_t>(lay_.group.size()) == B && static_cast<int64_t>(lay_.needed.size()) == B &&
            static_cast<int64_t>(lay_.shared.size()) == G && Lp + Tt <= T,
        "prefix layout does not fit a batch of ", B, " x ", T);
  auto real = [&](int64_t b, int64_t t) { return !mask || mask[b * T + t] != 0; };
  // Heads: each group's shared tokens, padded (mask 0) with its own sequence's next ids.
  std::vector<int64_t> rep(static_cast<std::size_t>(G), -1);
  for (int64_t b = 0; b < B; ++b) {
    const int32_t g = lay_.group[static_cast<std::size_t>(b)];
    check(g >= 0 && g < G, "prefix layout: sequence ", b, " has no group");
    if (lay_.needed[static_cast<std::size_t>(b)] > 0 && rep[static_cast<std::size_t>(g)] < 0) rep[static_cast<std::size_t>(g)] = b;
  }
  head_ids_.assign(static_cast<std::size_t>(G * Lp), ids[0]);
  head_mask_.assign(static_cast<std::size_t>(G * Lp), 0);
  for (int64_t g = 0; g < G; ++g) {
    const int64_t r = rep[static_cast<std::size_t>(g)], n = lay_.shared[static_cast<std::size_t>(g)];
    check(n <= Lp && (n == 0 || r >= 0), "prefix layout: group ", g, " shares ", n, " tokens");
    if (r < 0) continue;
    std::copy_n(ids + r * T, Lp, head_ids_.begin() + g * Lp);
    std::fill_n(head_mask_.begin() + g * Lp, n, uint8_t{1});
  }
  // Tails: tokens [shared, needed) of each sequence; its head must be the group's.
  tail_ids_.assign(static_cast<std::size_t>(B * Tt), ids[0]);
  tail_mask_.assign(static_cast<std::size_t>(B * Tt), 0);
  tail_prefix_.resize(static_cast<std::size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const auto g = static_cast<std::size_t>(lay_.group[static_cast<std::size_t>(b)]);
    const int64_t n = lay_.shared[g], need = lay_.needed[static_cast<std::size_t>(b)];
    tail_prefix_[static_cast<std::size_t>(b)] = n;
    if (need == 0) continue;
    check(need >= n && need - n <= Tt, "prefix layout: sequence ", b, " needs ", need, " tokens");
    for (int64_t t = 0; t < n; ++t)
      check(real(b, t) && ids[b * T + t] == head_ids_[static_cast<std::size_t>(static_cast<int64_t>(g) * Lp + t)],
            "prefix layout: sequence ", b, " differs from its group's head at token ", t);
    for (int64_t t = 0; t < Tt; ++t) {
      const std::size_t dst = static_cast<std::size_t>(b * Tt + t);
      tail_ids_[dst] = ids[b * T + n + t];
      tail_mask_[dst] = n + t < need && real(b, n + t) ? 1 : 0;
    }
  }
  if (Tt == 0) {
    head_.start(head_ids_.data(), head_mask_.data(), G, Lp);
    return;
  }
  head_kv_->reshape(G, Lp);
  head_.start_cached(head_ids_.data(), head_mask_.data(), G, Lp, *head_kv_);
  tail_kv_->reshape(B, Lp + Tt);
  tail_kv_->length = Lp;
  tail_.start_continuation(tail_ids_.data(), tail_mask_.data(), B, Tt, *tail_kv_, tail_prefix_.data());
}

void SharedPrefixPass::run_block(int block, ParamPtrs w) {
  head_.run_block(block, w);
  if (!sharing() || lay_.tail_T == 0) return;
  if (block > 0) {
    // The heads' keys/values of this layer, as the first Lp slots of each tail's cache.
    const int64_t Lp = lay_.head_T, kvd = arch_.config().kv_dim(), cap = tail_kv_->capacity;
    const float* hk = head_kv_->keys(0);
    const float* hv = head_kv_->values(0);
    float* tk = tail_kv_->keys(0);
    float* tv = tail_kv_->values(0);
    for (int64_t b = 0; b < B_; ++b) {
      const int64_t src = lay_.group[static_cast<std::size_t>(b)] * Lp * kvd, dst = b * cap * kvd;
      std::memcpy(tk + dst, hk + src, sizeof(float) * static_cast<std::size_t>(Lp * kvd));
      std::memcpy(tv + dst, hv + src, sizeof(float) * static_cast<std::size_t>(Lp * kvd));
    }
  }
  tail_.run_block(block, w);
}

void SharedPrefixPass::run_body(ParamPtrs w) {
  for (int b = 0; b <= static_cast<int>(arch_.config().num_layers); ++b) run_block(b, w);
}

const float* SharedPrefixPass::head_hidden(ParamPtrs w, const int64_t* rows, int64_t nrows) {
  if (!sharing()) return head_.head_hidden(w, rows, nrows);
  const int64_t Lp = lay_.head_T, Tt = lay_.tail_T, Wd = arch_.head_width();
  for (auto& v : rows_) v.clear();
  for (auto& v : at_) v.clear();
  for (int64_t i = 0; i < nrows; ++i) {
    check(rows[i] >= 0 && rows[i] < B_ * T_, "row ", rows[i], " is outside the batch of ", B_, " x ", T_);
    const int64_t b = rows[i] / T_, t = rows[i] % T_;
    const int32_t g = lay_.group[static_cast<std::size_t>(b)];
    const int64_t n = lay_.shared[static_cast<std::size_t>(g)];
    check(t < lay_.needed[static_cast<std::size_t>(b)], "row ", rows[i], " lies past the needed tokens of sequence ", b);
    const int side = t < n ? 0 : 1;
    rows_[side].push_back(side == 0 ? g * Lp + t : b * Tt + (t - n));
    at_[side].push_back(i);
  }
  float* out = blocks::ensure(hidden_, nrows * Wd);
  for (int side = 0; side < 2; ++side) {
    const auto n = static_cast<int64_t>(rows_[side].size());
    if (n == 0) continue;
    const float* h = (side == 0 ? head_ : tail_).head_hidden(w, rows_[side].data(), n);
    for (int64_t k = 0; k < n; ++k)
      std::memcpy(out + at_[side][static_cast<std::size_t>(k)] * Wd, h + k * Wd, sizeof(float) * static_cast<std::size_t>(Wd));
  }
  return out;
}

void SharedPrefixPass::logits(ParamPtrs w, const int64_t* rows, int64_t nrows, float* out) {
  head_logits(arch_, w, head_hidden(w, rows, nrows), nrows, out);
}

PassFootprint shared_prefix_pass_footprint(const Architecture& arch, int64_t B, int64_t T, int64_t head_rows,
                                           int threads) {
  PassFootprint f = forward_pass_footprint(arch, B, T, head_rows, threads);
  const auto R = static_cast<uint64_t>(B * T);
  f.own += (R * static_cast<uint64_t>(arch.config().hidden_size) +                    // tail_.x
            2 * static_cast<uint64_t>(head_rows * arch.head_width())) * sizeof(float);  // tail_ and own hidden rows
  f.shared += 4 * R * static_cast<uint64_t>(arch.config().kv_dim()) * sizeof(float);    // head and tail K/V, one layer
  return f;
}

}  // namespace zotune
