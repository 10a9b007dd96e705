// The order examples are visited in: a Fisher-Yates shuffle per epoch driven
// by Philox, so the permutation of epoch e is a pure function of (seed, e) on
// every machine and standard library (no std:: distributions).
#pragma once
#include <cstdint>
#include <vector>

namespace zotune {

// A uniform index in [0, bound) from Philox(seed-derived key, counter (i, epoch)).
// Multiply-shift on 64 random bits: the bias is below bound / 2^64.
uint64_t shuffle_draw(uint64_t seed, uint64_t epoch, uint64_t i, uint64_t bound);

// Fills `perm` (resized to n) with epoch `epoch`'s permutation of 0..n-1.
void epoch_permutation(uint64_t seed, uint64_t epoch, int64_t n, std::vector<int64_t>& perm);

}  // namespace zotune
