// Attention: softmax(q k^T * scale) v with causal + key-padding masks and GQA.
//
// Work is split into tasks (batch b, query head h, block of up to 32 queries)
// that run in parallel, each with its own slice of `scratch`. Two bodies:
//
// - Block path (full-sequence forward): the 32 queries of a block are SIMD
//   lanes. q is transposed once per block (Qt[d][lane]); a score is then one
//   FMA of a broadcast k element with a Qt vector, with no horizontal sums and
//   no transposition of K. Softmax runs per lane over the keys, and P*V is
//   vectorized over the head dimension.
// - Row path (decode, few queries): lanes over queries would be mostly empty;
//   a 4-lane vector runs over the head dimension of one key, eight keys at a
//   time.
//
// Both paths do the same arithmetic per query, in the same order: a score is
// a dot product over the head dimension split four ways (part r: a MulAdd
// chain over d = r mod 4 from zero; then (p0 + p2) + (p1 + p3)), times the
// scale; the softmax sum is split the same way over the keys; P*V is a MulAdd
// chain over the keys, times 1/sum. Which path a query takes depends on how
// many queries share its block (Tq), i.e. on the padded length of the batch:
// so a sequence's result does not depend on the padding nor on the other
// sequences (bit for bit; a data-parallel rank pads its slice to its own
// longest), and decoding after a cache gives the full forward's rows.
//
// Only keys j < min(Tk, q_offset + last query + 1) are visited.
#include "kernels/hwy_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attention.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <limits>

#include "hwy/highway.h"
#include "kernels/kernels.h"
#include "kernels/vec_math-inl.h"

// This file is compiled once per target; declarations outside the target
// namespace must appear only once.
#ifndef ZOTUNE_KERNELS_ATTENTION_COMMON_
#define ZOTUNE_KERNELS_ATTENTION_COMMON_
namespace zotune::kernels::detail {
// Queries per task, and the lane count of the block path on every target.
inline constexpr int64_t kQueryBlock = 32;
}  // namespace zotune::kernels::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace zotune::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using detail::kQueryBlock;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Where the task's pieces live.
struct Task {
  const AttentionShape* s;
  const float* q;   // query row i0 of head h
  const float* k;   // key row 0 of group g
  const float* v;   // value row 0 of group g
  const uint8_t* valid;  // key_valid row of batch b, or null
  float* out;       // output row i0 of head h
  int64_t i0, rows;  // first query index and number of queries
};

bool KeyValid(const Task& t, int64_t j) { return t.valid == nullptr || t.valid[j] != 0; }

// ---- Block path -------------------------------------------------------------

// Both paths split a dot product over the head dimension (and the softmax sum
// over the keys) four ways, as the row path's 4-lane vectors do: part r sums
// the terms of index i = r mod 4 in order from zero (a MulAdd chain for the
// scores), and the parts are added as (p0 + p2) + (p1 + p3). On a target
// without 4-lane vectors (HWY_SCALAR) there is one part.
using D4 = hn::CappedTag<float, 4>;
HWY_INLINE int64_t Parts() { return static_cast<int64_t>(hn::Lanes(D4())); }
HWY_INLINE float SumParts(const float* a, int64_t parts) { return parts == 1 ? a[0] : (a[0] + a[2]) + (a[1] + a[3]); }

// St[j][l] = sum_d K[j][d] * Qt[d][l] for keys j..j+KB and the 2N lanes from
// lv, one part of the four-way split after the other: a part is a MulAdd
// chain per key and lane vector (2·KB in flight; the keys share each Qt load,
// the lane vectors each broadcast), parts 0 and 2 are added up in St, 1 and 3
// in `odd` (2·KB vectors). The loops over keys are unrolled so that the
// chains stay in registers (as arrays of vectors they lived on the stack:
// measured 1.7x slower).
template <int KB>
HWY_INLINE void BlockScoreKeys(const Task& t, const float* Qt, int64_t j, int64_t lv, float* St, float* odd) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t D = t.s->D, stride = t.s->kv_stride, P = Parts();
  const float* k[KB];
#pragma GCC unroll 8
  for (int i = 0; i < KB; ++i) k[i] = t.k + (j + i) * stride;
  constexpr int64_t kOrder[4] = {0, 2, 1, 3};
  for (int64_t o = 0; o < P; ++o) {
    const int64_t r = P == 1 ? 0 : kOrder[o];
    hn::Vec<DF> acc[KB][2];
#pragma GCC unroll 8
    for (int i = 0; i < KB; ++i) acc[i][0] = acc[i][1] = hn::Zero(d);
    for (int64_t dd = r; dd < D; dd += P) {
      const auto q0 = hn::LoadU(d, Qt + dd * kQueryBlock + lv);
      const auto q1 = hn::LoadU(d, Qt + dd * kQueryBlock + lv + N);
#pragma GCC unroll 8
      for (int i = 0; i < KB; ++i) {
        const auto b = hn::Set(d, k[i][dd]);
        acc[i][0] = hn::MulAdd(b, q0, acc[i][0]);
        acc[i][1] = hn::MulAdd(b, q1, acc[i][1]);
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < KB; ++i)
#pragma GCC unroll 8
      for (int c = 0; c < 2; ++c) {
        float* to = r % 2 == 0 ? St + (j + i) * kQueryBlock + lv + c * N : odd + (2 * i + c) * N;
        hn::StoreU(r < 2 ? acc[i][c] : hn::Add(hn::LoadU(d, to), acc[i][c]), d, to);
      }
  }
  if (P == 1) return;
#pragma GCC unroll 8
  for (int i = 0; i < KB; ++i)
#pragma GCC unroll 8
    for (int c = 0; c < 2; ++c) {
      float* to = St + (j + i) * kQueryBlock + lv + c * N;
      hn::StoreU(hn::Add(hn::LoadU(d, to), hn::LoadU(d, odd + (2 * i + c) * N)), d, to);
    }
}

// St[j][l] for all keys below kend and all 32 lanes l.
void BlockScores(const Task& t, int64_t kend, const float* Qt, float* St) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(DF()));
  constexpr int kKeys = 4;
  HWY_ALIGN float odd[2 * kKeys * hn::MaxLanes(DF())];
  for (int64_t lv = 0; lv < kQueryBlock; lv += 2 * N) {
    int64_t j = 0;
    for (; j + kKeys <= kend; j += kKeys) BlockScoreKeys<kKeys>(t, Qt, j, lv, St, odd);
    for (; j < kend; ++j) BlockScoreKeys<1>(t, Qt, j, lv, St, odd);
  }
}

// Turns St into unnormalized probabilities exp(s - max) per lane (0 where
// masked) and writes 1/sum per lane (0 for a lane that sees no key).
void BlockSoftmax(const Task& t, int64_t kend, float* St, float* inv_sum) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto scale = hn::Set(d, t.s->scale);
  const auto neg_inf = hn::Set(d, kNegInf);
  for (int64_t lv = 0; lv < kQueryBlock; lv += N) {
    // Key index up to which each lane may look (float is exact below 2^24).
    const auto last_key =
        hn::Add(hn::Iota(d, 0.0f), hn::Set(d, static_cast<float>(t.s->q_offset + t.i0 + lv)));
    auto m = neg_inf;
    for (int64_t j = 0; j < kend; ++j) {
      float* sj = St + j * kQueryBlock + lv;
      auto x = neg_inf;
      if (KeyValid(t, j)) {
        x = hn::Mul(hn::LoadU(d, sj), scale);
        x = hn::IfThenElse(hn::Ge(last_key, hn::Set(d, static_cast<float>(j))), x, neg_inf);
      }
      hn::StoreU(x, d, sj);
      m = hn::Max(m, x);
    }
    // Lanes without any visible key keep m = -inf; exp(-inf - 0) = 0 then.
    m = hn::IfThenZeroElse(hn::Eq(m, neg_inf), m);
    hn::Vec<DF> part[4] = {hn::Zero(d), hn::Zero(d), hn::Zero(d), hn::Zero(d)};
    const int64_t P = Parts();
    for (int64_t j = 0; j < kend; ++j) {
      float* sj = St + j * kQueryBlock + lv;
      const auto p = hn::Exp(d, hn::Sub(hn::LoadU(d, sj), m));
      hn::StoreU(p, d, sj);
      part[j % P] = hn::Add(part[j % P], p);
    }
    const auto sum = P == 1 ? part[0] : hn::Add(hn::Add(part[0], part[2]), hn::Add(part[1], part[3]));
    const auto positive = hn::Gt(sum, hn::Zero(d));
    hn::StoreU(hn::IfThenElseZero(positive, hn::Div(hn::Set(d, 1.0f), sum)), d, inv_sum + lv);
  }
}

// out[l][dc, dc + C*N) for four lanes l0..l0+3: sum over keys of p[j][l] v[j].
template <int C>
HWY_INLINE void BlockPV4(const Task& t, int64_t jend, const float* St, int64_t l0, int64_t dc,
                         const float* inv_sum) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t stride = t.s->kv_stride;
  hn::Vec<DF> acc[4][C];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = hn::Zero(d);
  for (int64_t j = 0; j < jend; ++j) {
    const float* vj = t.v + j * stride + dc;
    const float* pj = St + j * kQueryBlock + l0;
    hn::Vec<DF> vv[C];
    for (int c = 0; c < C; ++c) vv[c] = hn::LoadU(d, vj + c * N);
    for (int r = 0; r < 4; ++r) {
      const auto p = hn::Set(d, pj[r]);
      for (int c = 0; c < C; ++c) acc[r][c] = hn::MulAdd(p, vv[c], acc[r][c]);
    }
  }
  for (int64_t r = 0; r < 4 && l0 + r < t.rows; ++r) {
    float* o = t.out + (l0 + r) * t.s->out_stride + dc;
    const auto inv = hn::Set(d, inv_sum[l0 + r]);
    for (int c = 0; c < C; ++c) hn::StoreU(hn::Mul(acc[r][c], inv), d, o + c * N);
  }
}

void BlockPV(const Task& t, int64_t kend, const float* St, const float* inv_sum) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t D = t.s->D, stride = t.s->kv_stride;
  for (int64_t l0 = 0; l0 < t.rows; l0 += 4) {
    // Keys past the last of these four queries have p = 0 (causal).
    const int64_t jend = std::min(kend, t.s->q_offset + t.i0 + l0 + 4);
    int64_t dc = 0;
    for (; dc + 4 * N <= D; dc += 4 * N) BlockPV4<4>(t, jend, St, l0, dc, inv_sum);
    for (; dc + N <= D; dc += N) BlockPV4<1>(t, jend, St, l0, dc, inv_sum);
    for (; dc < D; ++dc) {  // head_dim not a multiple of the vector length
      for (int64_t r = 0; r < 4 && l0 + r < t.rows; ++r) {
        float acc = 0.0f;
        for (int64_t j = 0; j < jend; ++j) acc += St[j * kQueryBlock + l0 + r] * t.v[j * stride + dc];
        t.out[(l0 + r) * t.s->out_stride + dc] = acc * inv_sum[l0 + r];
      }
    }
  }
}

void BlockAttention(const Task& t, int64_t kend, float* scratch) {
  const int64_t D = t.s->D;
  float* Qt = scratch;                     // [D][32]
  float* inv_sum = Qt + D * kQueryBlock;   // [32]
  float* St = inv_sum + kQueryBlock;       // [kend][32]
  for (int64_t dd = 0; dd < D; ++dd)
    for (int64_t l = 0; l < kQueryBlock; ++l)
      Qt[dd * kQueryBlock + l] = l < t.rows ? t.q[l * t.s->q_stride + dd] : 0.0f;
  BlockScores(t, kend, Qt, St);
  BlockSoftmax(t, kend, St, inv_sum);
  BlockPV(t, kend, St, inv_sum);
}

// ---- Row path ---------------------------------------------------------------

// p[j..j+KB) = sum_d K[j][d] * q[d], split four ways as BlockScoreKeys does:
// lane r of a 4-lane vector is part r. qtail: q's last D mod 4 values, zero-padded.
template <int KB>
HWY_INLINE void RowScoreKeys(const Task& t, const float* qi, const float* qtail, int64_t j, float* p) {
  const D4 d4;
  const int64_t D = t.s->D, stride = t.s->kv_stride, P = Parts(), whole = D / P * P;
  const float* k[KB];
  hn::Vec<D4> acc[KB];
#pragma GCC unroll 8
  for (int i = 0; i < KB; ++i) {
    k[i] = t.k + (j + i) * stride;
    acc[i] = hn::Zero(d4);
  }
  for (int64_t dd = 0; dd < whole; dd += P) {
    const auto q = hn::LoadU(d4, qi + dd);
#pragma GCC unroll 8
    for (int i = 0; i < KB; ++i) acc[i] = hn::MulAdd(hn::LoadU(d4, k[i] + dd), q, acc[i]);
  }
  HWY_ALIGN float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma GCC unroll 8
  for (int i = 0; i < KB; ++i) {
    if (whole < D) {  // zero lanes add nothing to their parts
      for (int64_t dd = whole; dd < D; ++dd) a[dd - whole] = k[i][dd];
      acc[i] = hn::MulAdd(hn::Load(d4, a), hn::Load(d4, qtail), acc[i]);
    }
    hn::Store(acc[i], d4, a);
    p[j + i] = SumParts(a, P);
    std::fill(a, a + 4, 0.0f);
  }
}

// p[j] for keys j < kend: the block path's arithmetic, so a query's scores
// have the same bits on either path; eight keys' chains in flight.
void RowScores(const Task& t, const float* qi, int64_t kend, float* p) {
  const int64_t D = t.s->D, P = Parts(), whole = D / P * P;
  HWY_ALIGN float qtail[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t dd = whole; dd < D; ++dd) qtail[dd - whole] = qi[dd];
  int64_t j = 0;
  for (; j + 8 <= kend; j += 8) RowScoreKeys<8>(t, qi, qtail, j, p);
  for (; j < kend; ++j) RowScoreKeys<1>(t, qi, qtail, j, p);
}

// o[dc, dc + C*N) = inv * sum_j p[j] v[j][dc, ...].
template <int C>
HWY_INLINE void RowPV(const Task& t, int64_t kend, const float* p, int64_t dc, float inv, float* o) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  hn::Vec<DF> acc[C];
  for (int c = 0; c < C; ++c) acc[c] = hn::Zero(d);
  for (int64_t j = 0; j < kend; ++j) {
    const auto pj = hn::Set(d, p[j]);
    const float* vj = t.v + j * t.s->kv_stride + dc;
    for (int c = 0; c < C; ++c) acc[c] = hn::MulAdd(pj, hn::LoadU(d, vj + c * N), acc[c]);
  }
  for (int c = 0; c < C; ++c) hn::StoreU(hn::Mul(acc[c], hn::Set(d, inv)), d, o + dc + c * N);
}

void RowAttention(const Task& t, float* scratch) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const AttentionShape& s = *t.s;
  float* p = scratch;  // [Tk]
  for (int64_t r = 0; r < t.rows; ++r) {
    const float* qi = t.q + r * s.q_stride;
    float* o = t.out + r * s.out_stride;
    const int64_t kend = std::min(s.Tk, s.q_offset + t.i0 + r + 1);
    RowScores(t, qi, kend, p);
    float m = kNegInf;
    for (int64_t j = 0; j < kend; ++j) {
      p[j] = KeyValid(t, j) ? p[j] * s.scale : kNegInf;
      m = std::max(m, p[j]);
    }
    if (m == kNegInf) {  // no visible key
      std::fill(o, o + s.D, 0.0f);
      continue;
    }
    const auto mv = hn::Set(d, m);
    int64_t j = 0;
    for (; j + N <= kend; j += N) hn::StoreU(hn::Exp(d, hn::Sub(hn::LoadU(d, p + j), mv)), d, p + j);
    const hn::CappedTag<float, 1> d1;
    for (; j < kend; ++j) hn::StoreU(hn::Exp(d1, hn::Sub(hn::LoadU(d1, p + j), hn::Set(d1, m))), d1, p + j);
    // Summed in four parts over the keys, as a lane of BlockSoftmax does.
    const D4 d4;
    const int64_t P = Parts(), whole = kend / P * P;
    auto part = hn::Zero(d4);
    for (j = 0; j < whole; j += P) part = hn::Add(part, hn::LoadU(d4, p + j));
    HWY_ALIGN float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (j = whole; j < kend; ++j) a[j - whole] = p[j];
    part = hn::Add(part, hn::Load(d4, a));
    hn::Store(part, d4, a);
    const float sum = SumParts(a, P);
    const float inv = 1.0f / sum;
    int64_t dc = 0;
    for (; dc + 4 * N <= s.D; dc += 4 * N) RowPV<4>(t, kend, p, dc, inv, o);
    for (; dc + N <= s.D; dc += N) RowPV<1>(t, kend, p, dc, inv, o);
    for (; dc < s.D; ++dc) {
      float acc = 0.0f;
      for (int64_t jj = 0; jj < kend; ++jj) acc += p[jj] * t.v[jj * s.kv_stride + dc];
      o[dc] = acc * inv;
    }
  }
}

// Queries [i0, i0 + rows) of head h in batch b; rows <= kQueryBlock.
void AttentionTask(const AttentionShape& s, const float* q, const float* k, const float* v,
                   const uint8_t* key_valid, float* out, int64_t b, int64_t h, int64_t i0,
                   int64_t rows, float* scratch) {
  const int64_t g = h / (s.Hq / s.Hkv);
  Task t{&s,
         q + (b * s.Tq + i0) * s.q_stride + h * s.D,
         k + b * s.Tk * s.kv_stride + g * s.D,
         v + b * s.Tk * s.kv_stride + g * s.D,
         key_valid ? key_valid + b * s.Tk : nullptr,
         out + (b * s.Tq + i0) * s.out_stride + h * s.D,
         i0,
         rows};
  const int64_t kend = std::min(s.Tk, s.q_offset + i0 + rows);
  if (kend <= 0) {  // every query of the block precedes all keys
    for (int64_t r = 0; r < rows; ++r) std::fill(t.out + r * s.out_stride, t.out + r * s.out_stride + s.D, 0.0f);
    return;
  }
  // Below ~8 queries most block lanes would be idle; dot products win.
  if (rows >= 8)
    BlockAttention(t, kend, scratch);
  else
    RowAttention(t, scratch);
}

}  // namespace zotune::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

#include "base/error.h"
#include "kernels/isa.h"

namespace zotune::kernels {

HWY_EXPORT(AttentionTask);

namespace {

// Floats one thread needs, rounded to whole 64-byte lines.
int64_t per_thread_floats(const AttentionShape& s) {
  const int64_t block = s.D * detail::kQueryBlock + detail::kQueryBlock +
                        (s.Tk + 4) * detail::kQueryBlock;
  return (block + 15) / 16 * 16;
}

}  // namespace

int64_t attention_scratch_floats(const AttentionShape& s, int threads) {
  // attention() uses omp_get_max_threads() threads; cover that too.
  const int64_t t = std::max<int64_t>({int64_t{threads}, int64_t{omp_get_max_threads()}, 1});
  return t * per_thread_floats(s);
}

void attention(const AttentionShape& s, const float* q, const float* k, const float* v,
               const uint8_t* key_valid, float* out, float* scratch) {
  detail::ensure_isa();
  check(s.B >= 0 && s.Tq >= 0 && s.Tk >= 0 && s.D >= 0 && s.Hq > 0 && s.Hkv > 0,
        "attention: bad shape B=", s.B, " Tq=", s.Tq, " Tk=", s.Tk, " Hq=", s.Hq, " Hkv=", s.Hkv,
        " D=", s.D);
  check(s.Hq % s.Hkv == 0, "attention: Hq=", s.Hq, " is not a multiple of Hkv=", s.Hkv);
  check(s.q_offset >= 0, "attention: q_offset=", s.q_offset, " < 0");
  if (s.B == 0 || s.Tq == 0 || s.D == 0) return;
  const int64_t blocks = (s.Tq + detail::kQueryBlock - 1) / detail::kQueryBlock;
  const int64_t tasks = s.B * s.Hq * blocks;
  const int64_t per_thread = per_thread_floats(s);
  // Rough multiply-adds; a task under ~64k of them is not worth a thread.
  const int64_t work = s.B * s.Hq * s.Tq * std::min(s.Tk, s.q_offset + s.Tq) * s.D;
  const bool parallel = !omp_in_parallel() && work >= (int64_t{1} << 17) && tasks > 1;
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t blk = task % blocks;
    const int64_t h = (task / blocks) % s.Hq;
    const int64_t b = task / (blocks * s.Hq);
    const int64_t i0 = blk * detail::kQueryBlock;
    const int64_t rows = std::min(detail::kQueryBlock, s.Tq - i0);
    float* mine = scratch + omp_get_thread_num() * per_thread;
    HWY_DYNAMIC_DISPATCH(AttentionTask)(s, q, k, v, key_valid, out, b, h, i0, rows, mine);
  }
}

}  // namespace zotune::kernels
#endif  // HWY_ONCE
