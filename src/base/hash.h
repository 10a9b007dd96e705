// A fast non-cryptographic 64-bit hash (XXH3 from Debian's libxxhash) for
// detecting changed or damaged files: the disk tier's per-file checksums and
// the base model's identity. Not for anything an attacker controls.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace zotune {

uint64_t hash64(const void* data, std::size_t n);

// The same hash over bytes fed in pieces: equal to hash64 of their concatenation.
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void reset();
  void update(const void* data, std::size_t n);
  uint64_t digest() const;

 private:
  void* state_;
};

// 16 lowercase hex digits.
std::string hash_hex(uint64_t h);

}  // namespace zotune
