#include "base/hash.h"

#include <xxhash.h>

#include <cstdio>
#include <new>

namespace zotune {

uint64_t hash64(const void* data, std::size_t n) { return XXH3_64bits(data, n); }

Hasher::Hasher() : state_(XXH3_createState()) {
  if (!state_) throw std::bad_alloc();
  reset();
}

Hasher::~Hasher() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void Hasher::reset() { XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_)); }

void Hasher::update(const void* data, std::size_t n) { XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, n); }

uint64_t Hasher::digest() const { return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_)); }

std::string hash_hex(uint64_t h) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace zotune
