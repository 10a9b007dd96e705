#include "store/disk_catch_up.h"

#include "base/error.h"
#include "store/disk_layout.h"
#include "zo/replay.h"

namespace zotune {

void disk_catch_up(ParamStore& store, const DiskLayout& layout, const std::vector<int64_t>& updates,
                   kernels::ZDist dist, float weight_decay, const std::vector<UpdateRecord>& records) {
  const auto target = static_cast<int64_t>(records.size());
  for (int u = 0; u < layout.num_units(); ++u)
    check(updates[static_cast<std::size_t>(u)] <= target, layout.unit_path(u).string(), ": holds ",
          updates[static_cast<std::size_t>(u)], " updates, more than the ", target, " of the update log");
  replay(store, dist, weight_decay, records, updates);
}

}  // namespace zotune
