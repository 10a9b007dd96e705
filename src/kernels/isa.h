// Internal: applies ZOTUNE_ISA once, before the first dispatched call.
#pragma once

namespace zotune::kernels::detail {

// Reads ZOTUNE_ISA on the first call and forces that target. Throws
// zotune::Error (on this and every later call) if the value is unknown or the
// target is not available here.
void ensure_isa();

}  // namespace zotune::kernels::detail
