// What the store make_store(arch, ckpt, so) builds will allocate, from the
// tensor table alone (for the memory plan, train/memory_plan): the weights it
// holds in RAM, its fp32 working copies, its buffers for streamed chunks and,
// for the disk tier, its staging buffers and files.
//
// Kept apart from the stores while their internals are being reshaped (issue
// #9): each figure names the buffer it stands for, so a store that changes a
// buffer changes its line here.
#pragma once
#include <cstdint>

#include "model/architecture.h"
#include "store/store_factory.h"

namespace zotune {

struct StoreFootprint {
  uint64_t weights = 0;        // every parameter in RAM in the storage dtype (none for disk)
  uint64_t working = 0;        // fp32 working copies of the resident block(s)
  uint64_t stream_chunks = 0;  // chunk buffers of the streamed tensors (embedding, lm_head)
  uint64_t staging = 0;        // disk: block buffers in the storage dtype
  uint64_t disk_bytes = 0;     // disk: the working copy's files
  uint64_t disk_read_bytes_per_step = 0;  // disk: bytes read per step (every file once, a tied embedding twice)
};

StoreFootprint store_footprint(const Architecture& arch, const StoreOptions& so);

}  // namespace zotune
