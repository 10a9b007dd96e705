// Replay: re-applying logged updates to a store with the training run's
// arithmetic (the fused pass of zo/apply.h, no perturbation). One function for
// `zotune replay`, resume from the base model, the engine's flush, and the disk
// tier's crash catch-up, which differ only in where each unit starts.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/zo_kernels.h"
#include "zo/update.h"

namespace zotune {

class ParamStore;

// Unit u of `store` — blocks 0 .. N-1, then the streamed tensors in ascending
// id — gets records [from[u], records.size()) in order; `from` empty means 0
// for every unit. Tensors are independent, so this equals applying record by
// record to the whole model.
void replay(ParamStore& store, kernels::ZDist dist, float weight_decay, const std::vector<UpdateRecord>& records,
            const std::vector<int64_t>& from = {});

}  // namespace zotune
