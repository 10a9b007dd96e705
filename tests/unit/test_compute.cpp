// The compute layer's choices: CPU features decoded from recorded CPUID words,
// the OpenBLAS kernel set chosen from them (and applied with no settings by the
// CLI), matmul through the backend seam against the scalar sgemm, the FMA-peak
// probe and the FLOP count the benchmarks divide by.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "base/cpu_features.h"
#include "base/error.h"
#include "base/threads.h"
#include "io/json_file.h"
#include "kernels/compute_env.h"
#include "kernels/fma_peak.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"
#include "model/architecture.h"
#include "model/forward.h"
#include "test_util.h"

namespace zotune {
namespace {

// Leaf 1 ECX bits: SSE3 0, SSSE3 9, FMA 12, SSE4.1 19, SSE4.2 20, OSXSAVE 27, AVX 28.
constexpr uint32_t kSse3 = 1u << 0, kSsse3 = 1u << 9, kFma = 1u << 12, kSse41 = 1u << 19, kSse42 = 1u << 20,
                   kOsxsave = 1u << 27, kAvx = 1u << 28;
// Leaf 7 EBX: AVX2 5, AVX512F 16, DQ 17, CD 28, BW 30, VL 31. EDX: AMX-BF16 22,
// AVX512-FP16 23, AMX-TILE 24, AMX-INT8 25. Leaf 7.1 EAX: AVX512-BF16 5.
constexpr uint32_t kAvx2 = 1u << 5, kAvx512Core = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);
constexpr uint32_t kAmx = (1u << 22) | (1u << 24) | (1u << 25), kFp16 = 1u << 23, kBf16 = 1u << 5;
constexpr uint64_t kXcrAvx = 0x7, kXcrAvx512 = 0xE7, kXcrAmx = 0x600E7;

// Recorded on the development machine (AMD EPYC, family 26: AVX-512 with
// BF16, VP2INTERSECT; no AMX), 2026-11-30.
constexpr CpuidRecord kEpycFamily26{13, 0xfed83203, 0x178bfbff, 0xf1bb03a9, 0x18005f42, 0x110, 0x30, 0xe7};
constexpr uint32_t kSse = kSse3 | kSsse3 | kSse41 | kSse42;
// Xeon server of family 6 model 207 as the issue describes it: AVX-512 with BF16
// and FP16, AMX in CPUID but its tile state not enabled by the hypervisor.
constexpr CpuidRecord kXeonNoAmxState{0x1f, kSse | kFma | kOsxsave | kAvx, 0, kAvx2 | kAvx512Core, 0, kFp16 | kAmx, kBf16, kXcrAvx512};
constexpr CpuidRecord kXeonAmx{0x1f, kSse | kFma | kOsxsave | kAvx, 0, kAvx2 | kAvx512Core, 0, kFp16 | kAmx, kBf16, kXcrAmx};
// AVX2 + FMA, no AVX-512 (Haswell..Alder Lake, Zen 1-3).
constexpr CpuidRecord kAvx2Only{0xd, kSse | kFma | kOsxsave | kAvx, 0, kAvx2, 0, 0, 0, kXcrAvx};
// AVX-512 in CPUID, but the OS does not save ZMM state: AVX-512 is unusable.
constexpr CpuidRecord kAvx512NoOsState{0x1f, kSse | kFma | kOsxsave | kAvx, 0, kAvx2 | kAvx512Core, 0, 0, 0, kXcrAvx};
constexpr CpuidRecord kAvxOnly{0xd, kSse | kOsxsave | kAvx, 0, 0, 0, 0, 0, kXcrAvx};
// No AVX at all (Westmere-class), and AVX bits without OSXSAVE (OS without XSAVE).
constexpr CpuidRecord kSse42Only{0xb, kSse, 0, 0, 0, 0, 0, 0};
constexpr CpuidRecord kAvxNoXsave{0xd, kSse | kFma | kAvx, 0, kAvx2, 0, 0, 0, 0};
constexpr CpuidRecord kSse3Only{0xa, kSse3, 0, 0, 0, 0, 0, 0};

TEST(CpuFeatures, DecodesRecordedCpus) {
  const CpuFeatures epyc = decode_cpu_features(kEpycFamily26);
  EXPECT_TRUE(epyc.avx512_core() && epyc.avx512_bf16 && epyc.avx512_vnni && epyc.avx2 && epyc.fma);
  EXPECT_FALSE(epyc.avx512_fp16 || epyc.amx_tile || epyc.amx_bf16);

  const CpuFeatures xeon = decode_cpu_features(kXeonNoAmxState);
  EXPECT_TRUE(xeon.avx512_core() && xeon.avx512_bf16 && xeon.avx512_fp16);
  EXPECT_FALSE(xeon.amx_tile || xeon.amx_bf16 || xeon.amx_int8);
  const CpuFeatures amx = decode_cpu_features(kXeonAmx);
  EXPECT_TRUE(amx.amx_tile && amx.amx_bf16 && amx.amx_int8);

  const CpuFeatures no_os = decode_cpu_features(kAvx512NoOsState);
  EXPECT_TRUE(no_os.avx2 && no_os.fma);
  EXPECT_FALSE(no_os.avx512f || no_os.avx512_core());

  const CpuFeatures no_xsave = decode_cpu_features(kAvxNoXsave);
  EXPECT_FALSE(no_xsave.avx || no_xsave.avx2 || no_xsave.fma);
  EXPECT_TRUE(no_xsave.sse42);

  EXPECT_EQ(cpu_feature_names(decode_cpu_features(kSse3Only)), "sse3");
  EXPECT_EQ(cpu_feature_names(decode_cpu_features(kAvxOnly)), "avx sse4.2 sse4.1 ssse3 sse3");
}

TEST(CpuFeatures, ChoosesOpenBlasKernelsFromFeaturesOnly) {
  using kernels::openblas_core_for;
  EXPECT_STREQ(openblas_core_for(decode_cpu_features(kEpycFamily26)), "SkylakeX");
  EXPECT_STREQ(openblas_core_for(decode_cpu_features(kXeonNoAmxState)), "SkylakeX");
  EXPECT_STREQ(openblas_core_for(decode_cpu_features(kXeonAmx)), "SkylakeX");
  EXPECT_STREQ(openblas_core_for(decode_cpu_features(kAvx2Only)), "Haswell");
  EXPECT_STREQ(openblas_core_for(decode_cpu_features(kAvx512NoOsState)), "Haswell");
  EXPECT_STREQ(openblas_core_for(decode_cpu_features(kAvxOnly)), "Sandybridge");
  EXPECT_STREQ(openblas_core_for(decode_cpu_features(kSse42Only)), "Nehalem");
  EXPECT_STREQ(openblas_core_for(decode_cpu_features(kAvxNoXsave)), "Nehalem");
  EXPECT_STREQ(openblas_core_for(decode_cpu_features(kSse3Only)), "Prescott");
  EXPECT_STREQ(openblas_core_for(CpuFeatures{}), "Prescott");
}

// This CPU decoded from CPUID against the kernel's own view (/proc/cpuinfo flags).
TEST(CpuFeatures, ThisCpuAgreesWithProcCpuinfo) {
  std::ifstream in("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      flags = " " + line.substr(line.find(':') + 1) + " ";
      break;
    }
  ASSERT_FALSE(flags.empty()) << "no flags line in /proc/cpuinfo";
  auto has = [&](const char* f) { return flags.find(" " + std::string(f) + " ") != std::string::npos; };
  const CpuFeatures& f = cpu_features();
  EXPECT_EQ(f.avx, has("avx"));
  EXPECT_EQ(f.avx2, has("avx2"));
  EXPECT_EQ(f.fma, has("fma"));
  EXPECT_EQ(f.avx512f, has("avx512f"));
  EXPECT_EQ(f.avx512bw, has("avx512bw"));
  EXPECT_EQ(f.avx512vl, has("avx512vl"));
  EXPECT_EQ(f.avx512dq, has("avx512dq"));
  EXPECT_EQ(f.avx512cd, has("avx512cd"));
  EXPECT_EQ(f.avx512_bf16, has("avx512_bf16"));
  EXPECT_EQ(f.avx512_fp16, has("avx512_fp16"));
  EXPECT_EQ(f.amx_tile, has("amx_tile"));
}

// With no settings the CLI runs the kernels chosen from this CPU's features,
// says so in --dry-run, and a user's OPENBLAS_CORETYPE wins.
TEST(ComputeEnv, DryRunReportsTheKernelsChosenFromFeatures) {
  const std::string model = testing::quote(testing::golden_dir() / "gpt2");
  auto json_of = [](const std::string& out) {
    std::istringstream s(out);
    std::string line, last;
    while (std::getline(s, line))
      if (line.rfind("{", 0) == 0) last = line;
    return Json::parse(last);
  };
  const auto plain = testing::run_zotune_env("env -u OPENBLAS_CORETYPE -u OMP_WAIT_POLICY -u ZOTUNE_GEMM",
                                             "train --model " + model + " --batch-size 2 --max-length 16 --dry-run");
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  const Json c = json_of(plain.output).at("compute");
  EXPECT_EQ(c.at("gemm").get<std::string>(), std::string("openblas ") + kernels::openblas_core_for(cpu_features()))
      << plain.output;
  EXPECT_EQ(c.at("avx512_bf16").get<bool>(), cpu_features().avx512_bf16);
  EXPECT_EQ(c.at("amx").get<bool>(), cpu_features().amx_tile && cpu_features().amx_bf16);
  EXPECT_NE(plain.output.find("bf16 hardware: AVX512-BF16 "), std::string::npos) << plain.output;
  EXPECT_GT(json_of(plain.output).at("machine").at("fma_peak_gflops").get<double>(), 0.0);

  const auto user = testing::run_zotune_env("env OPENBLAS_CORETYPE=Prescott",
                                            "train --model " + model + " --batch-size 2 --max-length 16 --dry-run");
  ASSERT_EQ(user.exit_code, 0) << user.output;
  EXPECT_EQ(json_of(user.output).at("compute").at("gemm").get<std::string>(), "openblas Prescott");
}

std::vector<float> uniform(std::size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Every fp32 backend built in.
std::vector<const kernels::ComputeBackend*> fp32_backends() {
  return {&kernels::openblas_backend(),
#if ZOTUNE_HAVE_ONEDNN
          &kernels::onednn_backend(),
#endif
  };
}

// y = x · W on backend b, as matmul() calls it (dense strides filled in).
void matmul_on(const kernels::ComputeBackend& b, kernels::MatmulArgs a) {
  if (a.ldx == 0) a.ldx = a.in;
  if (a.ldy == 0) a.ldy = a.out;
  b.matmul(a);
}

// matmul on every backend against the scalar sgemm, both weight layouts, odd
// sizes and row strides, shapes cut into several tiles; tolerance as the sgemm
// test: K 2^-24 sum |x w|.
TEST(Matmul, MatchesReferenceInBothLayoutsWithStrides) {
  struct Case { int64_t rows, in, out, ldx, ldy; };
  for (const kernels::ComputeBackend* b : fp32_backends())
  for (const Case c : {Case{1, 1, 1, 0, 0}, Case{7, 13, 5, 0, 0}, Case{33, 17, 65, 20, 70}, Case{64, 96, 48, 0, 0},
                       Case{300, 129, 517, 131, 520}, Case{517, 65, 33, 0, 0}}) {
    for (const WeightLayout layout : {WeightLayout::OutIn, WeightLayout::InOut}) {
      const int64_t ldx = c.ldx ? c.ldx : c.in, ldy = c.ldy ? c.ldy : c.out;
      const auto x = uniform(static_cast<std::size_t>(c.rows * ldx), 1), w = uniform(static_cast<std::size_t>(c.in * c.out), 2);
      std::vector<float> got(static_cast<std::size_t>(c.rows * ldy), 7.0f), want = got, mag = got;
      for (int64_t r = 0; r < c.rows; ++r)  // y is not read: NaN there must not come through
        std::fill_n(got.begin() + r * ldy, c.out, std::numeric_limits<float>::quiet_NaN());
      matmul_on(*b, {x.data(), DType::F32, c.rows, c.in, c.out, c.ldx, c.ldy, {w.data(), DType::F32, layout}, got.data()});
      const bool out_in = layout == WeightLayout::OutIn;
      kernels::ref::sgemm(false, out_in, c.rows, c.out, c.in, 1.0f, x.data(), ldx, w.data(), out_in ? c.in : c.out, 0.0f,
                          want.data(), ldy);
      std::vector<float> ax(x.size()), aw(w.size());
      for (std::size_t i = 0; i < x.size(); ++i) ax[i] = std::fabs(x[i]);
      for (std::size_t i = 0; i < w.size(); ++i) aw[i] = std::fabs(w[i]);
      kernels::ref::sgemm(false, out_in, c.rows, c.out, c.in, 1.0f, ax.data(), ldx, aw.data(), out_in ? c.in : c.out, 0.0f,
                          mag.data(), ldy);
      for (int64_t r = 0; r < c.rows; ++r)
        for (int64_t j = 0; j < ldy; ++j) {
          const std::size_t i = static_cast<std::size_t>(r * ldy + j);
          if (j >= c.out) {
            ASSERT_EQ(got[i], 7.0f) << b->name() << " wrote past out at row " << r;  // the stride's gap is untouched
            continue;
          }
          ASSERT_NEAR(got[i], want[i], static_cast<double>(c.in) * 0x1p-24 * mag[i] + 1e-30)
              << b->name() << ": rows " << c.rows << " in " << c.in << " out " << c.out << " layout " << int(layout)
              << " at " << r << "," << j;
        }
    }
  }
}

// Every backend gives the same bits with 1, 2 and 3 threads (C cut into tiles
// by shape alone, kernels/blas_tiles.h): a tiny model's product, a streamed
// head chunk, a gpt2-124m layer, odd sizes with strides over several tiles.
TEST(Matmul, EveryBackendIsBitIdenticalForAnyThreadCount) {
  struct Case { int64_t rows, in, out, ldx, ldy; WeightLayout layout; };
  const Case cases[] = {{128, 64, 192, 0, 0, WeightLayout::InOut},   {124, 64, 8192, 0, 0, WeightLayout::OutIn},
                        {512, 768, 768, 0, 0, WeightLayout::InOut},  {300, 129, 517, 131, 520, WeightLayout::OutIn},
                        {517, 129, 300, 0, 0, WeightLayout::InOut}};
  const int before = compute_threads();
  for (const kernels::ComputeBackend* b : fp32_backends())
    for (const Case& c : cases) {
      const int64_t ldx = c.ldx ? c.ldx : c.in, ldy = c.ldy ? c.ldy : c.out;
      const auto x = uniform(static_cast<std::size_t>(c.rows * ldx), 3), w = uniform(static_cast<std::size_t>(c.in * c.out), 4);
      std::vector<float> first;
      for (const int threads : {1, 2, 3}) {
        set_compute_threads(threads);
        std::vector<float> y(static_cast<std::size_t>(c.rows * ldy), 0.0f);
        matmul_on(*b, {x.data(), DType::F32, c.rows, c.in, c.out, c.ldx, c.ldy, {w.data(), DType::F32, c.layout}, y.data()});
        if (threads == 1)
          first = y;
        else
          EXPECT_EQ(0, std::memcmp(y.data(), first.data(), y.size() * sizeof(float)))
              << b->name() << ": rows " << c.rows << " in " << c.in << " out " << c.out << ", " << threads << " threads";
      }
    }
  set_compute_threads(before);
}

// ZOTUNE_GEMM chooses the backend the CLI computes with (reported by --dry-run);
// a name no built backend has is an error naming it.
TEST(Matmul, EnvironmentChoosesTheBackend) {
  const std::string args = "train --model " + testing::quote(testing::golden_dir() / "gpt2") +
                           " --batch-size 2 --max-length 16 --dry-run";
  const auto bad = testing::run_zotune_env("env ZOTUNE_GEMM=nosuch", args);
  EXPECT_NE(bad.exit_code, 0) << bad.output;
  EXPECT_NE(bad.output.find("ZOTUNE_GEMM=nosuch"), std::string::npos) << bad.output;
  for (const kernels::ComputeBackend* b : fp32_backends()) {
    const std::string id = b->id();
    // The CLI picks OpenBLAS's kernels from the CPU's features (this process
    // runs the ones OpenBLAS detected: "Zen" where the CLI picks "Haswell").
    const std::string name =
        id == "openblas" ? std::string("openblas ") + kernels::openblas_core_for(cpu_features()) : b->name();
    const auto run = testing::run_zotune_env("env -u OPENBLAS_CORETYPE ZOTUNE_GEMM=" + id, args);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_NE(run.output.find("\"gemm\":\"" + name + "\""), std::string::npos) << id << ": " << run.output;
  }
}

TEST(Matmul, DispatchesOnDtypesAndNamesAMissingPair) {
  EXPECT_EQ(&kernels::backend_for(DType::F32, DType::F32), &kernels::openblas_backend());
  EXPECT_EQ(&kernels::compute_backend(), &kernels::openblas_backend());
  try {
    kernels::backend_for(DType::BF16, DType::BF16);
    FAIL() << "a bf16 x bf16 product has no backend yet";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("BF16 activations by BF16 weights"), std::string::npos) << e.what();
  }
  float x = 1, w = 2, y = 0;
  EXPECT_THROW(kernels::matmul({&x, DType::F32, 1, 1, 1, 0, 0, {&w, DType::F16, WeightLayout::OutIn}, &y}), Error);
  // The fp32 backend keeps working copies fp32 in the checkpoint's layout, whatever the storage.
  const WeightFormat f = kernels::compute_backend().working_format(DType::BF16, WeightLayout::InOut);
  EXPECT_EQ(f.dtype, DType::F32);
  EXPECT_EQ(f.layout, WeightLayout::InOut);
}

TEST(FmaPeak, ReportsPositiveRatesOnTheKernelsTarget) {
  const kernels::FmaPeak p = kernels::measure_fma_peak(2, 0.002, 1);
  EXPECT_EQ(p.threads, 2);
  EXPECT_EQ(p.isa, kernels::isa_name());
  EXPECT_TRUE(std::isfinite(p.gflops_1) && p.gflops_1 > 0) << p.gflops_1;
  EXPECT_TRUE(std::isfinite(p.gflops_n) && p.gflops_n > 0) << p.gflops_n;
}

// forward_flops against the hand count for GPT-2 (4 matrices per layer, 12 C^2
// weights; tied head V x C; causal attention), which bench_forward used before.
TEST(ForwardFlops, MatchesTheHandCountForGpt2) {
  const auto arch = make_architecture(architecture_preset("gpt2", "gpt2-124m"), "preset");
  const ModelConfig& c = arch->config();
  const double B = 4, T = 128, C = static_cast<double>(c.hidden_size), V = static_cast<double>(c.vocab_size);
  const double L = static_cast<double>(c.num_layers), H = static_cast<double>(c.num_heads), D = static_cast<double>(c.head_dim);
  const double want = B * T * (L * 2.0 * 12.0 * C * C + 2.0 * C * V) + L * B * H * 2.0 * D * T * (T + 1);
  EXPECT_DOUBLE_EQ(forward_flops(*arch, 4, 128), want);
}

}  // namespace
}  // namespace zotune
