// Included first by every kernel file that uses Highway, so that all of them
// compile the same set of targets and one forced target applies to all.
// SSSE3 is left out: SSE4 covers every x86-64 CPU of the last decade and each
// target costs compile time; the scalar fallback (EMU128) remains.
#pragma once

#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS HWY_SSSE3
#endif
