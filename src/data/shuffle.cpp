#include "data/shuffle.h"

#include <numeric>
#include <utility>

#include "base/philox.h"

namespace zotune {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The data order gets its own key so it shares no Philox stream with the
// perturbations drawn from the same run seed.
constexpr uint64_t kShuffleDomain = 0x64617461'73687566ull;  // "datashuf"

}  // namespace

uint64_t shuffle_draw(uint64_t seed, uint64_t epoch, uint64_t i, uint64_t bound) {
  const uint64_t key = splitmix64(seed ^ kShuffleDomain);
  const auto r = Philox4x32::block(
      {static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), static_cast<uint32_t>(epoch),
       static_cast<uint32_t>(epoch >> 32)},
      {static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32)});
  const uint64_t bits = (uint64_t{r[0]} << 32) | r[1];
  return static_cast<uint64_t>((static_cast<unsigned __int128>(bits) * bound) >> 64);
}

void epoch_permutation(uint64_t seed, uint64_t epoch, int64_t n, std::vector<int64_t>& perm) {
  perm.resize(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(shuffle_draw(seed, epoch, static_cast<uint64_t>(i), static_cast<uint64_t>(i) + 1));
    std::swap(perm[i], perm[j]);
  }
}

}  // namespace zotune
