#include "kernels/zo_reference.h"

#include <cmath>
#include <numbers>

#include "base/philox.h"

namespace zotune::kernels::ref {

void zo_block_words(uint64_t seed, uint32_t tensor_id, ZoStream stream, uint64_t block,
                    uint32_t out[4]) {
  const auto w =
      Philox4x32::block<kZoPhiloxRounds>({static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                         tensor_id, static_cast<uint32_t>(stream)},
                        {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  for (int r = 0; r < 4; ++r) out[r] = w[r];
}

namespace {

// Element i: group G = i / 64, word r = (i % 64) / 16, lane k = i % 16, block G * 16 + k.
void element_words(uint64_t seed, uint32_t tensor_id, ZoStream stream, int64_t i, int& r,
                   uint32_t w[4]) {
  const int64_t group = i / 64, k = i % 16;
  r = static_cast<int>((i % 64) / 16);
  zo_block_words(seed, tensor_id, stream, static_cast<uint64_t>(group * 16 + k), w);
}

}  // namespace

void zo_fill_z(uint64_t seed, uint32_t tensor_id, ZDist dist, int64_t begin, int64_t n,
               double* out) {
  for (int64_t j = 0; j < n; ++j) {
    if (dist == ZDist::Ones) {
      out[j] = 1.0;
      continue;
    }
    int r = 0;
    uint32_t w[4];
    element_words(seed, tensor_id, ZoStream::Perturbation, begin + j, r, w);
    if (dist == ZDist::Rademacher) {
      out[j] = (w[r] >> 31) != 0 ? 1.0 : -1.0;
      continue;
    }
    const int pair = r / 2;
    const double u1 = (static_cast<double>(w[2 * pair] >> 8) + 1.0) / 16777216.0;
    const double u2 = static_cast<double>(w[2 * pair + 1] >> 8) / 16777216.0;
    const double rad = std::sqrt(-2.0 * std::log(u1));
    const double angle = 2.0 * std::numbers::pi * u2;
    out[j] = r % 2 == 0 ? rad * std::cos(angle) : rad * std::sin(angle);
  }
}

void zo_fill_uniform(uint64_t seed, uint32_t tensor_id, int64_t begin, int64_t n, float* out) {
  for (int64_t j = 0; j < n; ++j) {
    int r = 0;
    uint32_t w[4];
    element_words(seed, tensor_id, ZoStream::Rounding, begin + j, r, w);
    out[j] = static_cast<float>(static_cast<double>(w[r] >> 8) / 16777216.0);
  }
}

void zo_update_perturb(const ZoUpdate& upd, const ZoPerturb& pert, int64_t n, const float* z_prev,
                       const float* z, float* weights, float* plus, float* minus) {
  for (int64_t i = 0; i < n; ++i) {
    float w = weights[i];
    if (upd.active) {
      w = w - upd.lr * (upd.grad * z_prev[i] + upd.weight_decay * w);
      weights[i] = w;
    }
    if (pert.active) {
      plus[i] = w + pert.eps * z[i];
      if (minus != nullptr) minus[i] = w - pert.eps * z[i];
    }
  }
}

}  // namespace zotune::kernels::ref
