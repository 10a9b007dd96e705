// ISA selection: which Highway target the dispatched kernels use.
#include "kernels/hwy_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/isa.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace zotune::kernels::HWY_NAMESPACE {

const char* TargetNameHere() { return hwy::TargetName(HWY_TARGET); }

}  // namespace zotune::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

#include "base/error.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"

namespace zotune::kernels {

HWY_EXPORT(TargetNameHere);

namespace {

// Targets this CPU supports, read before any forcing (forcing changes what
// hwy::SupportedTargets reports).
int64_t cpu_targets() {
  static const int64_t targets = hwy::SupportedTargets();
  return targets;
}

int64_t available_mask() { return cpu_targets() & HWY_TARGETS; }

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// 0 means "no forcing" (the best available target).
int64_t target_from_name(std::string_view name) {
  const std::string n = lower(name);
  if (n.empty() || n == "native" || n == "best") return 0;
  // The portable fallback is EMU128, or SCALAR with compilers Highway
  // considers broken for EMU128 (GCC < 12.3, e.g. Debian 12's).
  if (n == "scalar" || n == "emu128") return HWY_BASELINE_SCALAR;
  if (n == "sse4" || n == "sse4.2" || n == "sse42") return HWY_SSE4;
  if (n == "avx2") return HWY_AVX2;
  if (n == "avx512" || n == "avx3" || n == "avx-512") return HWY_AVX3;
  return -1;
}

std::string available_list() {
  std::string s;
  for (const std::string& name : available_isas()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

void apply(std::string_view name, const char* origin) {
  const int64_t target = target_from_name(name);
  check(target >= 0, origin, "='", name,
        "' is not a known ISA (use native, avx512, avx2, sse4 or scalar)");
  if (target != 0) {
    check((available_mask() & target) != 0, origin, "='", name, "': target ",
          hwy::TargetName(target), " is not available on this CPU/build (available: ",
          available_list(), ")");
  }
  hwy::SetSupportedTargetsForTest(target);
}

}  // namespace

namespace detail {

void ensure_isa() {
  // A throwing initializer leaves the static uninitialized, so every call
  // reports the bad value again.
  static const bool applied = [] {
    (void)cpu_targets();
    if (const char* env = std::getenv("ZOTUNE_ISA"); env != nullptr && *env != '\0')
      apply(env, "ZOTUNE_ISA");
    return true;
  }();
  (void)applied;
}

}  // namespace detail

const char* isa_name() {
  detail::ensure_isa();
  return HWY_DYNAMIC_DISPATCH(TargetNameHere)();
}

std::vector<std::string> available_isas() {
  std::vector<std::string> names;
  // Lower bits are better targets on x86.
  for (int64_t bits = available_mask(); bits != 0; bits &= bits - 1)
    names.emplace_back(hwy::TargetName(bits & -bits));
  return names;
}

void force_isa(std::string_view name) {
  detail::ensure_isa();
  apply(name, "force_isa");
}

}  // namespace zotune::kernels
#endif  // HWY_ONCE
