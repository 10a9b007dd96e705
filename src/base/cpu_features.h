// What the CPU can execute, from CPUID and the OS's enabled register state
// (XGETBV): the facts kernel selection is made from. Never a model-number
// table: a CPU we have not seen is described by its features like any other.
// The raw registers are a value type so tests can decode recorded CPUs.
#pragma once
#include <cstdint>
#include <string>

namespace zotune {

// The CPUID/XGETBV words the decoder reads (0 where a leaf does not exist).
struct CpuidRecord {
  uint32_t max_leaf = 0;
  uint32_t leaf1_ecx = 0, leaf1_edx = 0;
  uint32_t leaf7_ebx = 0, leaf7_ecx = 0, leaf7_edx = 0;  // leaf 7, sub-leaf 0
  uint32_t leaf7_1_eax = 0;                               // leaf 7, sub-leaf 1
  uint64_t xcr0 = 0;                                      // 0 without OSXSAVE
};

// Features usable by this process: a vector extension counts only when the OS
// saves its registers (a hypervisor may advertise AVX-512 and not enable it).
struct CpuFeatures {
  bool sse3 = false, ssse3 = false, sse41 = false, sse42 = false;
  bool avx = false, fma = false, avx2 = false;
  bool avx512f = false, avx512dq = false, avx512cd = false, avx512bw = false, avx512vl = false;
  bool avx512_vnni = false, avx512_bf16 = false, avx512_fp16 = false;
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;
  // AVX-512 F/CD/BW/DQ/VL: the Skylake-server set most AVX-512 code needs.
  bool avx512_core() const { return avx512f && avx512cd && avx512bw && avx512dq && avx512vl; }
};

CpuidRecord read_cpuid();  // this CPU (all zero off x86)
CpuFeatures decode_cpu_features(const CpuidRecord& r);
const CpuFeatures& cpu_features();  // this CPU, read once

// Space-separated names of the vector features present, best first
// ("avx512f avx512bw ... avx2 fma avx ..."), for reports.
std::string cpu_feature_names(const CpuFeatures& f);

}  // namespace zotune
