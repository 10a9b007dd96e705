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
//
// Second part, in situ: what zotune would actually run. zotune's GEMM cuts C
// into tiles that depend on the shape alone (kernels/blas_tiles.h) so that the
// bits do not depend on --threads; a oneDNN backend must do the same. Here
// every tile of the same cut is one single-threaded oneDNN execution on that
// tile's weights pre-packed in the blocked layout oneDNN chooses (format any,
// primitive created with one OpenMP thread, executed inside the parallel
// region over tiles, where oneDNN runs on the calling thread). It checks that
// C is bit-identical with 1, 2 and 3 threads, prints the blocked format, and
// times them at T threads (wall time) and 1 thread (CPU time), with zotune's
// oneDNN backend (ZOTUNE_GEMM=onednn: dnnl_sgemm on the same tiles) beside them.
// Built only when oneDNN is installed (apt-get install libdnnl-dev); not a
// dependency of zotune. Usage: packed_gemm [ROUNDS [THREADS]]
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include "base/threads.h"
#include "kernels/blas_tiles.h"
#include "kernels/compute_env.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"

namespace {

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
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


const std::vector<Shape> kShapes = {
    {"gpt2-124m", "c_attn", 512, 768, 2304, false},   {"gpt2-124m", "c_proj", 512, 768, 768, false},
    {"gpt2-124m", "c_fc", 512, 768, 3072, false},     {"gpt2-124m", "mlp.c_proj", 512, 3072, 768, false},
    {"llama-3.2-1b", "q/o_proj", 512, 2048, 2048, true}, {"llama-3.2-1b", "k/v_proj", 512, 2048, 512, true},
    {"llama-3.2-1b", "gate/up", 512, 2048, 8192, true}, {"llama-3.2-1b", "down", 512, 8192, 2048, true},
};

double wall_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Seconds per call, best of 3 repetitions of `reps` calls, on the given clock.
double time_on(double (*clock)(), const std::function<void()>& f, int reps) {
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    const double t0 = clock();
    for (int i = 0; i < reps; ++i) f();
    best = std::min(best, (clock() - t0) / reps);
  }
  return best;
}

// "BA16a64b"-style description of a blocked memory desc: the dims in the order
// of decreasing stride, then the inner blocks.
std::string format_of(const dnnl::memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.format_kind != dnnl_blocked) return "(not blocked)";
  const auto& b = d.format_desc.blocking;
  std::vector<int> order(static_cast<std::size_t>(d.ndims));
  for (int i = 0; i < d.ndims; ++i) order[static_cast<std::size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return b.strides[x] > b.strides[y]; });
  std::string out;
  for (const int i : order) {
    bool blocked = false;
    for (int k = 0; k < b.inner_nblks; ++k) blocked |= b.inner_idxs[k] == i;
    out += static_cast<char>((blocked ? 'A' : 'a') + i);
  }
  for (int k = 0; k < b.inner_nblks; ++k)
    out += std::to_string(b.inner_blks[k]) + static_cast<char>('a' + b.inner_idxs[k]);
  return out;
}

// oneDNN on zotune's tiles: C's tiles (kernels::detail::gemm_tiles), each one
// single-threaded matmul of x[rows i.., K] by the tile's columns of W.
//   packed     the tile's weights packed alone in the layout oneDNN picks
//              (format any; dims {K, n}: a = K, b = N), else W as stored
//   dense_dst  each tile writes a dense [m, n] scratch copied into C (oneDNN's
//              blocked-weight kernels may want a dense C), else straight into C
struct Variant {
  const char* name;
  bool packed, dense_dst;
};

class DnnlTiledGemm {
 public:
  DnnlTiledGemm(const dnnl::engine& eng, const Shape& s, const float* W, Variant v) : eng_(eng), s_(s), v_(v) {
    using dnnl::memory;
    const auto t = zotune::kernels::detail::gemm_tiles(s.M, s.N, s.K);
    // Create every primitive with one OpenMP thread: oneDNN sizes its blocking
    // and its parallel loop by the threads at creation.
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dnnl::stream strm(eng);
    for (int64_t i = 0; i < s.M; i += t.rows)
      for (int64_t j = 0; j < s.N; j += t.cols) {
        Tile tile{i, j, std::min(t.rows, s.M - i), std::min(t.cols, s.N - j), {}, {}, {}, {}, {}};
        tile.a_md = memory::desc({tile.m, s.K}, memory::data_type::f32, memory::dims{s.K, 1});
        tile.c_md = memory::desc({tile.m, tile.n}, memory::data_type::f32,
                                 memory::dims{v.dense_dst ? tile.n : s.N, 1});
        const memory::desc w_plain({s.K, tile.n}, memory::data_type::f32,
                                   s.out_in ? memory::dims{1, s.K} : memory::dims{s.N, 1});
        const memory::desc w_any({s.K, tile.n}, memory::data_type::f32, memory::format_tag::any);
        const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(tile.a_md, v.packed ? w_any : w_plain, tile.c_md), eng);
        tile.prim = dnnl::matmul(pd);
        if (v.dense_dst) tile.scratch.resize(static_cast<std::size_t>(tile.m * tile.n));
        float* w_tile = const_cast<float*>(s.out_in ? W + j * s.K : W + j);
        if (!v.packed) {
          tile.w = memory(w_plain, eng, w_tile);
        } else if (tile.i == 0) {  // tiles cut along M share their columns' weights
          memory src(w_plain, eng, w_tile);
          tile.w = memory(pd.weights_desc(), eng);
          dnnl::reorder(src, tile.w).execute(strm, src, tile.w);
        } else {
          tile.w = tiles_[static_cast<std::size_t>(j / t.cols)].w;
        }
        if (format_.empty()) format_ = format_of(pd.weights_desc()), impl_ = pd.impl_info_str();
        tiles_.push_back(std::move(tile));
      }
    strm.wait();
    omp_set_num_threads(threads);
  }
  void run(const float* A, float* C) const {
    const auto one = [&](const Tile& t) {
      using dnnl::memory;
      dnnl::stream strm(eng_);
      float* dst = v_.dense_dst ? const_cast<float*>(t.scratch.data()) : C + t.i * s_.N + t.j;
      memory a(t.a_md, eng_, const_cast<float*>(A + t.i * s_.K)), c(t.c_md, eng_, dst);
      t.prim.execute(strm, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, t.w}, {DNNL_ARG_DST, c}});
      strm.wait();
      if (v_.dense_dst)
        for (int64_t r = 0; r < t.m; ++r)
          std::memcpy(C + (t.i + r) * s_.N + t.j, dst + r * t.n, static_cast<std::size_t>(t.n) * sizeof(float));
    };
    const auto n = static_cast<int64_t>(tiles_.size());
    if (omp_get_max_threads() == 1) {
      for (const Tile& t : tiles_) one(t);
      return;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t k = 0; k < n; ++k) one(tiles_[static_cast<std::size_t>(k)]);
  }
  std::size_t tiles() const { return tiles_.size(); }
  std::string describe() const { return std::string(v_.name) + ": " + format_ + " " + impl_; }

 private:
  struct Tile {
    int64_t i, j, m, n;
    dnnl::matmul prim;
    dnnl::memory w;
    dnnl::memory::desc a_md, c_md;
    std::vector<float> scratch;
  };
  dnnl::engine eng_;
  Shape s_;
  Variant v_;
  std::vector<Tile> tiles_;
  std::string format_, impl_;
};

// The in-situ comparison; returns non-zero if the bits change with the thread count.
int tiled_part(int rounds, int threads) {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  const std::vector<Variant> variants = {
      {"packed", true, false}, {"packed+dense-C", true, true}, {"as-stored", false, false}};
  std::printf("\ntiled, thread-count independent (zotune's tiles), %d rounds interleaved, medians; "
              "ratios openblas time / variant time (>1: oneDNN faster)\n", rounds);
  std::mt19937 gen(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<double> log_wall(variants.size()), log_cpu(variants.size());
  double log_be_wall = 0, log_be_cpu = 0;
  for (const Shape& s : kShapes) {
    std::vector<float> A(static_cast<std::size_t>(s.M * s.K)), W(static_cast<std::size_t>(s.K * s.N)),
        C(static_cast<std::size_t>(s.M * s.N)), C2(C.size()), C3(C.size());
    for (float& x : A) x = nd(gen);
    for (float& x : W) x = nd(gen) * 0.02f;
    const auto openblas = [&] {
      zotune::kernels::sgemm(false, s.out_in, s.M, s.N, s.K, 1.0f, A.data(), s.K, W.data(), s.out_in ? s.K : s.N, 0.0f,
                             C.data(), s.N);
    };
    openblas();
    std::vector<std::unique_ptr<DnnlTiledGemm>> gemms;
    std::string desc;
    for (const Variant& v : variants) {
      gemms.push_back(std::make_unique<DnnlTiledGemm>(eng, s, W.data(), v));
      const DnnlTiledGemm& g = *gemms.back();
      desc += "  [" + g.describe() + "]";
      // Bits with 1, 2, 3 threads, and agreement with OpenBLAS.
      bool same = true;
      for (const int nt : {1, 2, 3}) {
        zotune::set_compute_threads(nt);
        g.run(A.data(), nt == 1 ? C3.data() : C2.data());
        if (nt > 1) same &= std::memcmp(C2.data(), C3.data(), C2.size() * sizeof(float)) == 0;
      }
      double worst = 0;
      for (std::size_t i = 0; i < C.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(C[i] - C3[i])));
      if (!same || worst > 1e-3) {
        std::fprintf(stderr, "packed_gemm: %s %s %s: %s (differs from OpenBLAS by %g)\n", s.model, s.layer, v.name,
                     same ? "thread-invariant" : "CHANGES BITS WITH THE THREAD COUNT", worst);
        return 1;
      }
    }
    // zotune's oneDNN backend (ZOTUNE_GEMM=onednn: dnnl_sgemm on the same tiles, weights as stored).
    const zotune::kernels::MatmulArgs args{A.data(), zotune::DType::F32, s.M, s.K, s.N, s.K, s.N,
                                           {W.data(), zotune::DType::F32,
                                            s.out_in ? zotune::WeightLayout::OutIn : zotune::WeightLayout::InOut},
                                           C2.data()};
    const auto backend = [&] { zotune::kernels::onednn_backend().matmul(args); };
    const double flops = 2.0 * static_cast<double>(s.M * s.K * s.N);
    const int reps = std::max(1, static_cast<int>(2e9 / flops));
    std::vector<double> ob_wall, ob_cpu, be_wall, be_cpu;
    std::vector<std::vector<double>> wall(variants.size()), cpu(variants.size());
    for (int r = 0; r < rounds; ++r) {  // A B C D A B C D at T threads (wall), then at 1 thread (CPU time)
      zotune::set_compute_threads(threads);
      ob_wall.push_back(time_on(wall_seconds, openblas, reps));
      be_wall.push_back(time_on(wall_seconds, backend, reps));
      for (std::size_t v = 0; v < variants.size(); ++v)
        wall[v].push_back(time_on(wall_seconds, [&] { gemms[v]->run(A.data(), C2.data()); }, reps));
      zotune::set_compute_threads(1);
      ob_cpu.push_back(time_on(thread_cpu_seconds, openblas, reps));
      be_cpu.push_back(time_on(thread_cpu_seconds, backend, reps));
      for (std::size_t v = 0; v < variants.size(); ++v)
        cpu[v].push_back(time_on(thread_cpu_seconds, [&] { gemms[v]->run(A.data(), C2.data()); }, reps));
    }
    std::printf("%-13s %-10s %4lldx%5lldx%5lld  %zu tiles, bits equal at 1/2/3 threads%s\n", s.model, s.layer,
                static_cast<long long>(s.M), static_cast<long long>(s.K), static_cast<long long>(s.N),
                gemms[0]->tiles(), desc.c_str());
    std::printf("    %dT wall GFLOP/s: openblas %6.1f  backend %6.1f (%.2f)", threads, flops / median(ob_wall) * 1e-9,
                flops / median(be_wall) * 1e-9, median(ob_wall) / median(be_wall));
    log_be_wall += std::log(median(ob_wall) / median(be_wall));
    for (std::size_t v = 0; v < variants.size(); ++v) {
      std::printf("  %s %6.1f (%.2f)", variants[v].name, flops / median(wall[v]) * 1e-9, median(ob_wall) / median(wall[v]));
      log_wall[v] += std::log(median(ob_wall) / median(wall[v]));
    }
    std::printf("\n    1T cpu  GFLOP/s: openblas %6.1f  backend %6.1f (%.2f)", flops / median(ob_cpu) * 1e-9,
                flops / median(be_cpu) * 1e-9, median(ob_cpu) / median(be_cpu));
    log_be_cpu += std::log(median(ob_cpu) / median(be_cpu));
    for (std::size_t v = 0; v < variants.size(); ++v) {
      std::printf("  %s %6.1f (%.2f)", variants[v].name, flops / median(cpu[v]) * 1e-9, median(ob_cpu) / median(cpu[v]));
      log_cpu[v] += std::log(median(ob_cpu) / median(cpu[v]));
    }
    std::printf("\n");
  }
  const auto n = static_cast<double>(kShapes.size());
  std::printf("geometric mean over shapes, openblas time / tiled oneDNN time (>1: oneDNN faster):\n");
  std::printf("  %-15s %dT wall %.2f  1T cpu %.2f\n", "backend", threads, std::exp(log_be_wall / n),
              std::exp(log_be_cpu / n));
  for (std::size_t v = 0; v < variants.size(); ++v)
    std::printf("  %-15s %dT wall %.2f  1T cpu %.2f\n", variants[v].name, threads, std::exp(log_wall[v] / n),
                std::exp(log_cpu[v] / n));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  zotune::kernels::ensure_compute_env(argv);
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  const int threads = argc > 2 ? std::max(1, std::atoi(argv[2])) : 2;
  zotune::set_compute_threads(1);
  omp_set_num_threads(1);
  using dnnl::memory;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  std::printf("packed_gemm: OpenBLAS core %s, oneDNN %d.%d.%d, 1 thread, %d rounds (thread CPU time)\n",
              std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "(auto)",
              dnnl_version()->major, dnnl_version()->minor, dnnl_version()->patch, rounds);
  std::mt19937 gen(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  double sum_log_packed = 0, sum_log_plain = 0;
  for (const Shape& s : kShapes) {
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
      t["openblas"].push_back(time_on(thread_cpu_seconds, openblas, reps));
      t["dnnl-plain"].push_back(time_on(thread_cpu_seconds, dnnl_plain, reps));
      t["dnnl-packed"].push_back(time_on(thread_cpu_seconds, dnnl_packed, reps));
      t["reorder"].push_back(time_on(thread_cpu_seconds, reorder, reps));
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
  const auto n = static_cast<double>(kShapes.size());
  std::printf("geometric mean over shapes: packed/openblas %.2f, plain/openblas %.2f (>1: oneDNN faster)\n",
              std::exp(sum_log_packed / n), std::exp(sum_log_plain / n));
  return tiled_part(rounds, threads);
}
