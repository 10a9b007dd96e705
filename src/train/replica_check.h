// Replicated weights stay replicated: every rank of a job holds θ and applies
// the same updates, so their bytes must agree. A rank whose memory, library or
// CPU computes differently would otherwise drift unseen. Every --check-every
// steps the ranks compare a checksum of their stored weights (after the
// pending update is flushed) and stop with an error naming the ranks that
// differ from rank 0.
#pragma once
#include <cstdint>

#include "dist/comm.h"
#include "store/param_store.h"

namespace zotune {

// A 64-bit checksum of every tensor's stored values as fp32, in tensor order
// (all updates must have been flushed).
uint64_t weights_checksum(const ParamStore& store);

// Gathers every rank's weights_checksum; throws, on every rank, an Error naming
// `step` and the ranks whose checksum differs from rank 0's.
void check_replicas(Comm& comm, const ParamStore& store, int64_t step);

}  // namespace zotune
