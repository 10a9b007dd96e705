// The planner shared by `zotune train` (--dry-run, --memory-budget) and
// `zotune bench`: this machine's constants (the probe: sgemm, the fused ZO
// pass, memcpy and the disk the working copy would use) and the memory plan of
// a run, with the tier chosen for a --memory-budget written back into the
// run's store options. The plan's arithmetic lives in store/memory_plan.
#pragma once
#include <cstdint>
#include <filesystem>

#include "model/architecture.h"
#include "train/memory_plan.h"
#include "store/store_factory.h"

namespace zotune {

// Probes this machine (~0.3 s; with `disk_dir`, + writing and reading ~128 MB
// there when it can: disk_measured says whether it could).
MachineConstants probe_machine(const std::filesystem::path& disk_dir = {});

// The nearest existing directory at or above `p` (the disk a run's --out will
// be on, before it exists).
std::filesystem::path existing_directory_of(const std::filesystem::path& p);

// The plan of a run of B x T and `directions` directions per step on this
// process's compute threads. With budget > 0
// the tier is chosen (choose_plan), the reason printed to stderr after `who`,
// and written into `so`; a budget nothing fits is an error when `must_fit`.
MemoryPlan plan_run(const Architecture& arch, StoreOptions& so, int64_t batch, int64_t seq_len, uint64_t budget,
                    const MachineConstants& mc, const char* who, bool must_fit, int directions = 1);

}  // namespace zotune
