#include "base/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace zotune {

namespace {
constexpr bool bit(uint64_t word, int b) { return ((word >> b) & 1u) != 0; }

// XCR0 state components: SSE (1), AVX upper halves (2), AVX-512 opmask and
// upper ZMM (5, 6, 7), AMX tile config and data (17, 18).
constexpr uint64_t kXcr0Avx = 0x6, kXcr0Avx512 = 0xE6, kXcr0Amx = (uint64_t{1} << 17) | (uint64_t{1} << 18);
}  // namespace

CpuidRecord read_cpuid() {
  CpuidRecord r;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return r;
  r.max_leaf = a;
  __cpuid(1, a, b, c, d);
  r.leaf1_ecx = c;
  r.leaf1_edx = d;
  if (r.max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned subleaves = a;
    r.leaf7_ebx = b;
    r.leaf7_ecx = c;
    r.leaf7_edx = d;
    if (subleaves >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      r.leaf7_1_eax = a;
    }
  }
  if (bit(r.leaf1_ecx, 27)) {  // OSXSAVE: XGETBV is allowed
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    r.xcr0 = (uint64_t{hi} << 32) | lo;
  }
#endif
  return r;
}

CpuFeatures decode_cpu_features(const CpuidRecord& r) {
  CpuFeatures f;
  f.sse3 = bit(r.leaf1_ecx, 0);
  f.ssse3 = bit(r.leaf1_ecx, 9);
  f.sse41 = bit(r.leaf1_ecx, 19);
  f.sse42 = bit(r.leaf1_ecx, 20);
  const bool os_avx = bit(r.leaf1_ecx, 27) && (r.xcr0 & kXcr0Avx) == kXcr0Avx;
  const bool os_avx512 = os_avx && (r.xcr0 & kXcr0Avx512) == kXcr0Avx512;
  const bool os_amx = bit(r.leaf1_ecx, 27) && (r.xcr0 & kXcr0Amx) == kXcr0Amx;
  f.avx = os_avx && bit(r.leaf1_ecx, 28);
  f.fma = f.avx && bit(r.leaf1_ecx, 12);
  const bool l7 = r.max_leaf >= 7;
  f.avx2 = f.avx && l7 && bit(r.leaf7_ebx, 5);
  f.avx512f = os_avx512 && l7 && bit(r.leaf7_ebx, 16);
  f.avx512dq = f.avx512f && bit(r.leaf7_ebx, 17);
  f.avx512cd = f.avx512f && bit(r.leaf7_ebx, 28);
  f.avx512bw = f.avx512f && bit(r.leaf7_ebx, 30);
  f.avx512vl = f.avx512f && bit(r.leaf7_ebx, 31);
  f.avx512_vnni = f.avx512f && bit(r.leaf7_ecx, 11);
  f.avx512_bf16 = f.avx512f && bit(r.leaf7_1_eax, 5);
  f.avx512_fp16 = f.avx512f && bit(r.leaf7_edx, 23);
  f.amx_tile = os_amx && l7 && bit(r.leaf7_edx, 24);
  f.amx_bf16 = f.amx_tile && bit(r.leaf7_edx, 22);
  f.amx_int8 = f.amx_tile && bit(r.leaf7_edx, 25);
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = decode_cpu_features(read_cpuid());
  return f;
}

std::string cpu_feature_names(const CpuFeatures& f) {
  const std::pair<bool, const char*> named[] = {
      {f.amx_tile, "amx-tile"},       {f.amx_bf16, "amx-bf16"},       {f.amx_int8, "amx-int8"},
      {f.avx512_fp16, "avx512fp16"},  {f.avx512_bf16, "avx512bf16"},  {f.avx512_vnni, "avx512vnni"},
      {f.avx512f, "avx512f"},         {f.avx512bw, "avx512bw"},       {f.avx512vl, "avx512vl"},
      {f.avx512dq, "avx512dq"},       {f.avx512cd, "avx512cd"},       {f.avx2, "avx2"},
      {f.fma, "fma"},                 {f.avx, "avx"},                 {f.sse42, "sse4.2"},
      {f.sse41, "sse4.1"},            {f.ssse3, "ssse3"},             {f.sse3, "sse3"}};
  std::string s;
  for (const auto& [present, name] : named)
    if (present) s += (s.empty() ? "" : " ") + std::string(name);
  return s;
}

}  // namespace zotune
