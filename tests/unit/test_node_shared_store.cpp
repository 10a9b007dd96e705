// NodeSharedStore (--share-node-weights): one stored θ for the ranks of a
// node, each rank updating its share of every unit between node barriers.
// In one process (a node of one) it must equal RamStore / LowBitRamStore bit
// for bit; on two ranks sharing one region (threads of a ThreadGroup, whose
// share_node hands both the same memory) it must equal two ranks with
// replicated stores, in the data- and the perturbation-parallel layout.
// tests/mpi/share_node_weights.sh runs the same under mpirun.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/threads.h"
#include "dist/layout.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "store/lowbit_store.h"
#include "store/node_shared_store.h"
#include "store/store_factory.h"
#include "test_util.h"
#include "thread_comm.h"
#include "train/engine.h"
#include "train/memory_plan.h"

namespace zotune {
namespace {

namespace fs = std::filesystem;

struct Result {
  std::vector<double> grads;
  double eval_loss = 0;
  std::vector<std::vector<float>> weights;
};

std::unique_ptr<ParamStore> store_of(const Architecture& arch, const Checkpoint& ckpt, DType dtype, Comm* shared) {
  if (shared) return std::make_unique<NodeSharedStore>(arch, ckpt, dtype, *shared);
  if (dtype == DType::F32) return std::make_unique<RamStore>(arch, ckpt);
  return std::make_unique<LowBitRamStore>(arch, ckpt, dtype);
}

// 3 steps (two-sided, or one-sided) with weight decay, a flush, an evaluation.
Result run_engine(const fs::path& model, DType dtype, Comm* shared, Comm& comm = single_process_comm(), RankLayout layout = {},
        bool one_sided = false, int directions = 1) {
  auto arch = load_architecture(model);
  Checkpoint ckpt(model);
  auto store = store_of(*arch, ckpt, dtype, shared);
  MezoOptions opt;
  opt.lr = 1e-3f;
  opt.eps = 1e-3f;
  opt.weight_decay = 0.05f;
  opt.one_sided = one_sided;
  opt.directions = directions;
  ZoEngine engine(*arch, *store, opt, 7, comm, layout);
  const Batch batch = language_model_batch({{5, 9, 17, 33, 41, 8, 12, 19, 23}, {7, 3, 99, 14, 6}}, 0);
  Result r;
  for (int t = 0; t < 3; ++t) r.grads.push_back(engine.step(t, 3, batch).grad);
  engine.flush();  // collective with a shared store
  r.eval_loss = engine.evaluate(batch).loss;
  for (std::size_t id = 0; id < arch->tensors().size(); ++id) {
    r.weights.emplace_back(static_cast<std::size_t>(arch->tensors()[id].numel()));
    store->read_tensor(static_cast<int>(id), r.weights.back().data());
  }
  return r;
}

void expect_same_bits(const Result& a, const Result& b, const std::string& what) {
  ASSERT_EQ(a.grads.size(), b.grads.size()) << what;
  for (std::size_t i = 0; i < a.grads.size(); ++i) EXPECT_EQ(a.grads[i], b.grads[i]) << what << " step " << i + 1;
  EXPECT_EQ(a.eval_loss, b.eval_loss) << what;
  ASSERT_EQ(a.weights.size(), b.weights.size()) << what;
  for (std::size_t id = 0; id < a.weights.size(); ++id)
    ASSERT_EQ(std::memcmp(a.weights[id].data(), b.weights[id].data(), a.weights[id].size() * sizeof(float)), 0)
        << what << ": tensor " << id << " differs";
}

TEST(NodeSharedStore, OneProcessEqualsThePrivateStores) {
  set_compute_threads(1);
  // gpt2: tied head; llama: untied head (updated while streamed).
  for (const char* name : {"gpt2", "llama"})
    for (DType d : {DType::F32, DType::BF16, DType::F16}) {
      const fs::path model = testing::golden_dir() / name;
      const std::string what = std::string(name) + " " + std::string(dtype_name(d));
      expect_same_bits(run_engine(model, d, nullptr), run_engine(model, d, &single_process_comm()), what);
      expect_same_bits(run_engine(model, d, nullptr, single_process_comm(), {}, true),
                       run_engine(model, d, &single_process_comm(), single_process_comm(), {}, true), what + " one-sided");
    }
}

// Two ranks (threads) of one layout, with replicated stores or one shared θ.
std::vector<Result> two_ranks(const fs::path& model, DType dtype, RankLayout layout, bool share, bool one_sided = false,
                              int directions = 0) {
  testing::ThreadGroup group(2);
  std::vector<Result> runs(2);
  std::vector<std::thread> ts;
  for (int r = 0; r < 2; ++r)
    ts.emplace_back([&, r] {
      set_compute_threads(1);
      Comm& c = group.rank(r);
      runs[static_cast<std::size_t>(r)] =
          run_engine(model, dtype, share ? &c : nullptr, c, layout, one_sided, directions ? directions : layout.groups);
    });
  for (auto& t : ts) t.join();
  return runs;
}

// Data and perturbation parallelism (the ranks share the working copies too,
// each making its share), one-sided, and two direction groups (different
// perturbations: each rank makes its own copies); DDP and PertP with two
// directions per rank (a block's copies private, a chunk's shared for direction 0).
TEST(NodeSharedStore, TwoRanksOnOneThetaEqualReplicatedRanks) {
  struct Case {
    RankLayout layout;
    bool one_sided;
    int directions = 0;  // 0: one per direction group
  };
  for (const char* name : {"gpt2", "llama"})
    for (DType d : {DType::F32, DType::BF16})
      for (Case c : {Case{{2, 1, 1}, false}, Case{{1, 2, 1}, false}, Case{{2, 1, 1}, true}, Case{{1, 1, 2}, false},
                     Case{{2, 1, 1}, false, 2}, Case{{1, 2, 1}, false, 2}}) {
        const fs::path model = testing::golden_dir() / name;
        const std::string what = std::string(name) + " " + std::string(dtype_name(d)) + " " + c.layout.flags() +
                                 (c.one_sided ? " one-sided" : "") + (c.directions ? " K=2" : "");
        const std::vector<Result> rep = two_ranks(model, d, c.layout, false, c.one_sided, c.directions),
                                  shared = two_ranks(model, d, c.layout, true, c.one_sided, c.directions);
        expect_same_bits(rep[0], shared[0], what + " rank 0");
        expect_same_bits(rep[1], shared[1], what + " rank 1");
        // The step changed the weights (the comparison is not of untouched bytes).
        EXPECT_NE(rep[0].grads[0], 0.0) << what;
      }
}

// The works of a sweep t: this step's perturbation and, from the second, the
// previous step's update.
BlockWork sweep_work(int t) {
  BlockWork w;
  w.perturb = true;
  w.eps = 1e-3f;
  w.weight_decay = 0.01f;
  w.seed = 1000 + static_cast<uint64_t>(t);
  if (t > 0) w.update = UpdateRecord(t, 1000 + static_cast<uint64_t>(t) - 1, 1e-2f, 0.5f);
  return w;
}

// One sweep over every unit of `store` (each block, then each streamed tensor
// in chunks of 16 rows): the sum of W+ and of W- of each tensor of a unit, in
// element order. `pause` runs before every unit (a slow rank).
std::vector<double> sweep_sums(ParamStore& store, const Architecture& arch, const BlockWork& work,
                               const std::function<void()>& pause) {
  std::vector<double> sums;
  auto add = [&](const float* p, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += p[i];
    sums.push_back(s);
  };
  for (int b = 0; b < arch.num_blocks(); ++b) {
    pause();
    BlockSession session = store.acquire(b, work);
    for (int k = 0; k < 2; ++k) {
      const ParamPtrs c = session.copy(k);
      for (int id : store.block_tensors(b))
        add(c[static_cast<std::size_t>(id)], arch.tensors()[static_cast<std::size_t>(id)].numel());
    }
  }
  for (int id : store.streamed_ids()) {
    pause();
    store.stream_rows(id, work, 16, [&](const RowChunk& c) {
      add(c.plus, c.rows * c.cols);
      add(c.minus, c.rows * c.cols);
      pause();
    });
  }
  return sums;
}

// Ranks that reach the units at different times: once the ranks have shown
// they perturb alike they claim a unit's elements instead of meeting at
// barriers, so the early rank does most of the pass, and the copies and the
// stored bits are still those of a store that works alone. Rank 1 is the late
// one by construction, not by a sleep (a loaded machine can stall either
// thread): once its store claims units it enters each unit only after rank 0
// has left it (between two calls of `pause` a rank runs at most one unit), so
// every claim of those units is left to rank 0.
TEST(NodeSharedStore, TheRankThatComesFirstDoesMoreOfThePass) {
  const fs::path model = testing::golden_dir() / "llama";  // untied head: both streamed tensors updated
  set_compute_threads(1);
  for (DType d : {DType::F32, DType::BF16}) {
    const std::string what(dtype_name(d));
    auto arch = load_architecture(model);
    Checkpoint ckpt(model);
    constexpr int kSweeps = 3;
    std::vector<std::vector<double>> ref(kSweeps);
    std::vector<std::vector<float>> ref_weights;
    uint64_t ref_draws = 0;
    {
      auto alone = store_of(*arch, ckpt, d, nullptr);
      for (int t = 0; t < kSweeps; ++t) ref[static_cast<std::size_t>(t)] = sweep_sums(*alone, *arch, sweep_work(t), [] {});
      for (std::size_t id = 0; id < arch->tensors().size(); ++id) {
        ref_weights.emplace_back(static_cast<std::size_t>(arch->tensors()[id].numel()));
        alone->read_tensor(static_cast<int>(id), ref_weights.back().data());
      }
      ref_draws = alone->counters().rng_draws;
    }
    testing::ThreadGroup group(2);
    std::vector<std::vector<std::vector<double>>> sums(2, std::vector<std::vector<double>>(kSweeps));
    std::vector<uint64_t> draws(2);
    std::vector<std::vector<std::vector<float>>> weights(2);
    std::vector<std::thread> ts;
    std::atomic<int64_t> pauses0{0};  // rank 0's calls of pause (INT64_MAX once it has swept)
    for (int r = 0; r < 2; ++r)
      ts.emplace_back([&, r] {
        set_compute_threads(1);
        auto a = load_architecture(model);
        Checkpoint c(model);
        NodeSharedStore store(*a, c, d, group.rank(r));
        int64_t mine = 0;
        const auto pause = [&, r] {
          ++mine;
          if (r == 0) {
            pauses0.store(mine);
            return;
          }
          // Barriers (before the switch) need both ranks: no waiting there.
          // The 10 s bound keeps a store that wrongly waits for rank 1 from
          // hanging the test.
          const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (store.claims_units() && pauses0.load() <= mine && std::chrono::steady_clock::now() < until)
            std::this_thread::yield();
        };
        for (int t = 0; t < kSweeps; ++t)
          sums[static_cast<std::size_t>(r)][static_cast<std::size_t>(t)] = sweep_sums(store, *a, sweep_work(t), pause);
        if (r == 0) pauses0.store(std::numeric_limits<int64_t>::max());
        draws[static_cast<std::size_t>(r)] = store.counters().rng_draws;
        for (std::size_t id = 0; id < a->tensors().size(); ++id) {
          weights[static_cast<std::size_t>(r)].emplace_back(static_cast<std::size_t>(a->tensors()[id].numel()));
          store.read_tensor(static_cast<int>(id), weights[static_cast<std::size_t>(r)].back().data());
        }
      });
    for (auto& t : ts) t.join();
    for (int r = 0; r < 2; ++r) {
      for (int t = 0; t < kSweeps; ++t)
        EXPECT_EQ(sums[static_cast<std::size_t>(r)][static_cast<std::size_t>(t)], ref[static_cast<std::size_t>(t)])
            << what << " rank " << r << " sweep " << t;
      for (std::size_t id = 0; id < ref_weights.size(); ++id)
        ASSERT_EQ(std::memcmp(weights[static_cast<std::size_t>(r)][id].data(), ref_weights[id].data(),
                              ref_weights[id].size() * sizeof(float)),
                  0)
            << what << " rank " << r << ": tensor " << id << " differs";
    }
    // Rank 1 did at most its share of the units before the switch (the
    // barriers that decide; llama's block 0 holds only streamed tensors, so
    // none).
    EXPECT_GT(draws[0], 4 * draws[1]) << what << ": rank 0 " << draws[0] << ", rank 1 " << draws[1];
    // fp32: between them the ranks drew z once per element and pass, as the
    // store alone (16-bit: that one makes its W- later, with a second draw).
    if (d == DType::F32) {
      EXPECT_EQ(draws[0] + draws[1], ref_draws) << what;
    }
    EXPECT_NE(ref[1], ref[0]) << what;  // the sweeps made different copies
  }
}

TEST(NodeSharedStore, BothRanksMapOneRegion) {
  const fs::path model = testing::golden_dir() / "gpt2";
  testing::ThreadGroup group(2);
  std::vector<std::size_t> bytes(2);
  std::vector<int> ranks(2), sizes(2);
  std::vector<std::thread> ts;
  for (int r = 0; r < 2; ++r)
    ts.emplace_back([&, r] {
      auto arch = load_architecture(model);
      Checkpoint ckpt(model);
      NodeSharedStore s(*arch, ckpt, DType::BF16, group.rank(r));
      bytes[static_cast<std::size_t>(r)] = s.shared_bytes();
      ranks[static_cast<std::size_t>(r)] = s.node_rank();
      sizes[static_cast<std::size_t>(r)] = s.node_size();
    });
  for (auto& t : ts) t.join();
  auto arch = load_architecture(model);
  std::size_t params = 0;
  for (const auto& t : arch->tensors()) params += static_cast<std::size_t>(t.numel());
  EXPECT_EQ(ranks, (std::vector<int>{0, 1}));
  EXPECT_EQ(sizes, (std::vector<int>{2, 2}));
  // Every weight once, 2 bytes each (plus at most 63 bytes of alignment a
  // tensor), then the working-copy slots: W+ and W- of the largest block
  // (twice), W+, W- and θ of the largest streamed chunk (four times), fp32;
  // 4 posted-work lines per rank and the claim lines (one per rank, two more).
  std::vector<std::size_t> blocks(static_cast<std::size_t>(arch->num_blocks()), 0);
  std::size_t chunk = 0;
  for (const auto& t : arch->tensors()) {
    const auto id = static_cast<int>(&t - arch->tensors().data());
    if (id != arch->token_embedding_id() && id != arch->head_weight_id())
      blocks[static_cast<std::size_t>(t.block)] += static_cast<std::size_t>(t.numel());
    else
      chunk = std::max(chunk, static_cast<std::size_t>(stream_chunk_rows(t.shape[1], t.shape[0]) * t.shape[1]));
  }
  const std::size_t block = *std::max_element(blocks.begin(), blocks.end());
  const std::size_t slots = 4 * (2 * 2 * block + 4 * 3 * chunk) + 64 * 4 * 2 + 64 * (2 + 2);
  EXPECT_GE(bytes[0], 2 * params + slots);
  EXPECT_LE(bytes[0], 2 * params + slots + 64 * (arch->tensors().size() + 4));
  EXPECT_EQ(bytes[0], bytes[1]);
}

// The plan of a node of R ranks: the weights once with the flag, R times without.
TEST(NodeSharedStore, PlanCountsSharedWeightsOncePerNode) {
  auto arch = load_architecture(testing::golden_dir() / "gpt2");
  PlanInput in;
  in.batch = 2;
  in.seq_len = 16;
  in.threads = 1;
  const MemoryPlan own = plan_memory(*arch, in, assumed_machine_constants());
  in.share_node_weights = true;
  const MemoryPlan shared = plan_memory(*arch, in, assumed_machine_constants());
  EXPECT_EQ(shared.bytes.total(), own.bytes.total());  // a rank's own figures do not change
  const uint64_t w = own.bytes.weights, rest = own.bytes.total() - w;
  ASSERT_GT(w, 0u);
  EXPECT_EQ(plan_node_bytes(own, 1), own.bytes.total());
  EXPECT_EQ(plan_node_bytes(shared, 1), own.bytes.total());
  EXPECT_EQ(plan_node_bytes(own, 4), 4 * w + 4 * rest);
  EXPECT_EQ(plan_node_bytes(shared, 4), w + 4 * rest);
  EXPECT_NE(plan_table(shared).find("weights (RAM, 1/node)"), std::string::npos);
  EXPECT_EQ(plan_json(shared)["share_node_weights"], true);
}

// The default of one stored θ per node (resolve_node_sharing): shared when a
// node runs several ranks, a RAM tier and room in /dev/shm; what the user
// asked otherwise. Every rank of the world decides alike.
struct Sharing {
  bool shared = false;
  std::string error;
};
std::vector<Sharing> resolve_on_ranks(int world, std::size_t room, NodeSharing asked, Offload tier = Offload::None) {
  const fs::path model = testing::golden_dir() / "gpt2";
  testing::ThreadGroup group(world);
  group.set_node_room(room);
  std::vector<Sharing> out(static_cast<std::size_t>(world));
  std::vector<std::thread> ts;
  for (int r = 0; r < world; ++r)
    ts.emplace_back([&, r] {
      auto arch = load_architecture(model);
      StoreOptions so;
      so.offload = tier;
      so.node_sharing = asked;
      try {
        resolve_node_sharing(*arch, so, group.rank(r));
        out[static_cast<std::size_t>(r)].shared = so.share_node_weights;
      } catch (const Error& e) {
        out[static_cast<std::size_t>(r)].error = e.what();
      }
    });
  for (auto& t : ts) t.join();
  return out;
}

TEST(NodeSharedStore, SeveralRanksOnANodeShareByDefault) {
  auto arch = load_architecture(testing::golden_dir() / "gpt2");
  const std::size_t need = NodeSharedStore::region_bytes(*arch, DType::F32, 2);
  // region_bytes is what the store maps.
  {
    testing::ThreadGroup group(2);
    std::vector<std::size_t> bytes(2);
    std::vector<std::thread> ts;
    for (int r = 0; r < 2; ++r)
      ts.emplace_back([&, r] {
        Checkpoint ckpt(testing::golden_dir() / "gpt2");
        bytes[static_cast<std::size_t>(r)] = NodeSharedStore(*arch, ckpt, DType::F32, group.rank(r)).shared_bytes();
      });
    for (auto& t : ts) t.join();
    EXPECT_EQ(bytes[0], need);
    EXPECT_EQ(bytes[1], need);
  }
  for (const Sharing& s : resolve_on_ranks(2, need, NodeSharing::Auto)) EXPECT_TRUE(s.shared) << s.error;
  // No room: every rank keeps its own copy, without an error.
  for (const Sharing& s : resolve_on_ranks(2, need - 1, NodeSharing::Auto)) {
    EXPECT_FALSE(s.shared);
    EXPECT_EQ(s.error, "");
  }
  // The disk tier keeps its own working copy; --no-share-node-weights.
  for (const Sharing& s : resolve_on_ranks(2, need, NodeSharing::Auto, Offload::Disk)) EXPECT_FALSE(s.shared);
  for (const Sharing& s : resolve_on_ranks(2, need, NodeSharing::Off)) EXPECT_FALSE(s.shared);
  // --share-node-weights without room: the same clear error on every rank.
  for (const Sharing& s : resolve_on_ranks(2, need / 2, NodeSharing::On)) {
    EXPECT_FALSE(s.shared);
    EXPECT_NE(s.error.find("/dev/shm"), std::string::npos) << s.error;
    EXPECT_NE(s.error.find("--no-share-node-weights"), std::string::npos) << s.error;
  }
  for (const Sharing& s : resolve_on_ranks(2, need, NodeSharing::On, Offload::Disk))
    EXPECT_NE(s.error.find("does not combine with --offload disk"), std::string::npos) << s.error;
  // One process: a node of one rank keeps the plain store unless asked.
  StoreOptions so;
  resolve_node_sharing(*arch, so, single_process_comm());
  EXPECT_FALSE(so.share_node_weights);
  so.node_sharing = NodeSharing::On;
  resolve_node_sharing(*arch, so, single_process_comm());
  EXPECT_TRUE(so.share_node_weights);
  // A plan of R ranks per node (--dry-run) makes the same choice.
  StoreOptions plan;
  EXPECT_FALSE(planned_node_sharing(plan, 1));
  EXPECT_TRUE(planned_node_sharing(plan, 2));
  plan.offload = Offload::Disk;
  EXPECT_FALSE(planned_node_sharing(plan, 4));
  plan.offload = Offload::Ram;
  plan.node_sharing = NodeSharing::Off;
  EXPECT_FALSE(planned_node_sharing(plan, 4));
}

}  // namespace
}  // namespace zotune
