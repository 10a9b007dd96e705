// Crash catch-up of the disk tier: after a crash or kill mid-step, the unit
// files hold different update counts (each file's header is authoritative).
// This piece owns bringing every unit forward from the run's update log: it
// checks that no unit is ahead of the log (naming the file) and replays the
// missing records onto each unit with the shared replay of zo/replay.h, the
// same arithmetic `zotune replay` and the training step use.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/zo_kernels.h"
#include "zo/update.h"

namespace zotune {

class DiskLayout;
class ParamStore;

// Brings each unit u of `store` (whose files `layout` describes) from
// updates[u] to records.size() updates (records[i] = update i of the run,
// applied at step i + 1). The store must be synced before and after.
void disk_catch_up(ParamStore& store, const DiskLayout& layout, const std::vector<int64_t>& updates,
                   kernels::ZDist dist, float weight_decay, const std::vector<UpdateRecord>& records);

}  // namespace zotune
