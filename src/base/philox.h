// Philox4x32-R (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"):
// a counter-based generator. The same (key, counter) gives the same four words
// on any thread, rank or machine, so random streams are regenerated, never stored.
// block() runs the standard 10 rounds (init, shuffling, sampling); the ZO
// perturbation streams use 7 (kernels/zo_kernels.h: kZoPhiloxRounds), the fewest
// the authors found to pass BigCrush, because they are a training step's hot loop.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace zotune {

struct Philox4x32 {
  static constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  static constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

  template <int Rounds = 10>
  static std::array<uint32_t, 4> block(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
    for (int round = 0; round < Rounds; ++round) {
      const uint64_t p0 = uint64_t{kM0} * c[0];
      const uint64_t p1 = uint64_t{kM1} * c[2];
      c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
           static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
      k[0] += kW0;
      k[1] += kW1;
    }
    return c;
  }
};

// Uniform in (0, 1]: never 0, so log() in Box-Muller is finite.
inline float uniform_open0(uint32_t x) { return (static_cast<float>(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }
// Uniform in [0, 1).
inline float uniform01(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }

// Four standard normals from one Philox block (two Box-Muller pairs).
inline std::array<float, 4> normals4(const std::array<uint32_t, 4>& r) {
  std::array<float, 4> z{};
  for (int p = 0; p < 2; ++p) {
    const float rad = std::sqrt(-2.0f * std::log(uniform_open0(r[2 * p])));
    const float ang = 2.0f * std::numbers::pi_v<float> * uniform01(r[2 * p + 1]);
    z[2 * p] = rad * std::cos(ang);
    z[2 * p + 1] = rad * std::sin(ang);
  }
  return z;
}

}  // namespace zotune
