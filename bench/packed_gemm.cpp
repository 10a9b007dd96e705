// Issue #10 item 3: would writing W± in a GEMM's pre-packed layout pay?
// At the linear-layer shapes of gpt2-124m and llama-3.2-1b (M = 512 rows =
// batch 4 x 128), one thread, thread CPU time (robust to a loaded machine),
// rounds interleaved, medians:
//   openblas      zotune's GEMM (kernels::sgemm: OpenBLAS, thread-independent tiles)
//   dnnl-plain    oneDNN fp32 matmul on the weights as stored (it packs inside each call)
//   dnnl-packed   oneDNN fp32 matmul on weights pre-packed in its blocked layout
//                 (the packing is what a ZO pass writing W± in that layout would absorb)
//   reorder       oneDNN's plain -> blocked weight reorder alone
// Prints one line per shape and case, then the ratios to openblas.
// Built only when oneDNN is installed (apt-get install libdnnl-dev); not a
// dependency of zotune. Usage: packed_gemm [ROUNDS]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include "base/threads.h"
#include "kernels/compute_env.h"
#include "kernels/kernels.h"

namespace {

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Seconds per call: the best of 3 repetitions of `reps` calls (CPU time of this thread).
double time_call(const std::function<void()>& f, int reps) {
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    const double t0 = thread_cpu_seconds();
    for (int i = 0; i < reps; ++i) f();
    best = std::min(best, (thread_cpu_seconds() - t0) / reps);
  }
  return best;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Shape {
  const char* model;
  const char* layer;
  int64_t M, K, N;
  bool out_in;  // weight stored [N, K] (nn.Linear) rather than [K, N] (GPT-2's Conv1D)
};

}  // namespace

int main(int argc, char** argv) {
  zotune::kernels::ensure_compute_env(argv);
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  zotune::set_compute_threads(1);
  omp_set_num_threads(1);
  using dnnl::memory;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const std::vector<Shape> shapes = {
      {"gpt2-124m", "c_attn", 512, 768, 2304, false},   {"gpt2-124m", "c_proj", 512, 768, 768, false},
      {"gpt2-124m", "c_fc", 512, 768, 3072, false},     {"gpt2-124m", "mlp.c_proj", 512, 3072, 768, false},
      {"llama-3.2-1b", "q/o_proj", 512, 2048, 2048, true}, {"llama-3.2-1b", "k/v_proj", 512, 2048, 512, true},
      {"llama-3.2-1b", "gate/up", 512, 2048, 8192, true}, {"llama-3.2-1b", "down", 512, 8192, 2048, true},
  };
  std::printf("packed_gemm: OpenBLAS core %s, oneDNN %d.%d.%d, 1 thread, %d rounds (thread CPU time)\n",
              std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "(auto)",
              dnnl_version()->major, dnnl_version()->minor, dnnl_version()->patch, rounds);
  std::mt19937 gen(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  double sum_log_packed = 0, sum_log_plain = 0;
  for (const Shape& s : shapes) {
    std::vector<float> A(static_cast<std::size_t>(s.M * s.K)), W(static_cast<std::size_t>(s.K * s.N)),
        C(static_cast<std::size_t>(s.M * s.N)), C2(C.size());
    for (float& x : A) x = nd(gen);
    for (float& x : W) x = nd(gen) * 0.02f;
    const memory::desc a_md({s.M, s.K}, memory::data_type::f32, memory::format_tag::ab);
    const memory::desc w_plain_md({s.K, s.N}, memory::data_type::f32, s.out_in ? memory::format_tag::ba : memory::format_tag::ab);
    const memory::desc w_any_md({s.K, s.N}, memory::data_type::f32, memory::format_tag::any);
    const memory::desc c_md({s.M, s.N}, memory::data_type::f32, memory::format_tag::ab);
    memory a_mem(a_md, eng, A.data()), w_mem(w_plain_md, eng, W.data()), c_mem(c_md, eng, C2.data());
    const dnnl::matmul::primitive_desc plain_pd(dnnl::matmul::desc(a_md, w_plain_md, c_md), eng);
    const dnnl::matmul::primitive_desc packed_pd(dnnl::matmul::desc(a_md, w_any_md, c_md), eng);
    dnnl::matmul plain(plain_pd), packed(packed_pd);
    memory w_packed(packed_pd.weights_desc(), eng);
    dnnl::reorder pack(w_mem, w_packed);
    pack.execute(strm, w_mem, w_packed);
    strm.wait();

    const auto openblas = [&] {
      zotune::kernels::sgemm(false, s.out_in, s.M, s.N, s.K, 1.0f, A.data(), s.K, W.data(), s.out_in ? s.K : s.N, 0.0f,
                             C.data(), s.N);
    };
    const auto dnnl_plain = [&] {
      plain.execute(strm, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, w_mem}, {DNNL_ARG_DST, c_mem}});
      strm.wait();
    };
    const auto dnnl_packed = [&] {
      packed.execute(strm, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, w_packed}, {DNNL_ARG_DST, c_mem}});
      strm.wait();
    };
    const auto reorder = [&] {
      pack.execute(strm, w_mem, w_packed);
      strm.wait();
    };
    // The three products agree (a wrong layout would not).
    openblas();
    dnnl_packed();
    double worst = 0;
    for (std::size_t i = 0; i < C.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(C[i] - C2[i])));
    if (worst > 1e-3) {
      std::fprintf(stderr, "packed_gemm: %s %s: oneDNN and OpenBLAS differ by %g\n", s.model, s.layer, worst);
      return 1;
    }
    const double flops = 2.0 * static_cast<double>(s.M * s.K * s.N);
    const int reps = std::max(1, static_cast<int>(2e9 / flops));
    std::map<std::string, std::vector<double>> t;
    for (int r = 0; r < rounds; ++r) {  // interleaved: A B C D A B C D ...
      t["openblas"].push_back(time_call(openblas, reps));
      t["dnnl-plain"].push_back(time_call(dnnl_plain, reps));
      t["dnnl-packed"].push_back(time_call(dnnl_packed, reps));
      t["reorder"].push_back(time_call(reorder, reps));
    }
    const double ob = median(t["openblas"]), pl = median(t["dnnl-plain"]), pk = median(t["dnnl-packed"]),
                 ro = median(t["reorder"]);
    std::printf("%-13s %-10s %4lldx%5lldx%5lld  openblas %6.1f  dnnl-plain %6.1f  dnnl-packed %6.1f GFLOP/s"
                "  packed/openblas %.2f  plain/openblas %.2f  reorder %.3f ms (%.0f%% of a packed call)\n",
                s.model, s.layer, static_cast<long long>(s.M), static_cast<long long>(s.K), static_cast<long long>(s.N),
                flops / ob * 1e-9, flops / pl * 1e-9, flops / pk * 1e-9, ob / pk, ob / pl, ro * 1e3, 100.0 * ro / pk);
    sum_log_packed += std::log(ob / pk);
    sum_log_plain += std::log(ob / pl);
  }
  const auto n = static_cast<double>(shapes.size());
  std::printf("geometric mean over shapes: packed/openblas %.2f, plain/openblas %.2f (>1: oneDNN faster)\n",
              std::exp(sum_log_packed / n), std::exp(sum_log_plain / n));
  return 0;
}
