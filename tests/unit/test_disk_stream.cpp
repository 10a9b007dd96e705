// Streamed tensors of the disk tier (rows files): DiskStore::stream_rows against
// the RAM tiers chunk for chunk (θ, W+ and W- bit-exact; fp32 files against
// RamStore, bf16/fp16 files against LowBitRamStore), over chunk sizes whose byte
// boundaries fall inside pages, with and without the I/O thread. Then crash
// safety of a rows file's rewrite: simulated faults at every point, a real
// SIGKILL in the middle of the write, and a killed `zotune train` that resumes
// bit-identically.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <thread>

#include "base/error.h"
#include "child_run.h"
#include "disk_test_util.h"
#include "io/json_file.h"


namespace zotune {
namespace {

using namespace disktest;

// What fn saw of one chunk, by value.
struct SeenChunk {
  int64_t row0 = 0, rows = 0, cols = 0;
  std::vector<float> theta, plus, minus;
};

std::vector<SeenChunk> stream(ParamStore& s, int id, const BlockWork& work, int64_t chunk_rows) {
  std::vector<SeenChunk> seen;
  s.stream_rows(id, work, chunk_rows, [&](const RowChunk& c) {
    const auto n = static_cast<std::size_t>(c.rows * c.cols);
    seen.push_back({c.row0, c.rows, c.cols, {c.theta, c.theta + n}, {c.plus, c.plus + n}, {c.minus, c.minus + n}});
  });
  return seen;
}

void expect_same_chunks(const std::vector<SeenChunk>& got, const std::vector<SeenChunk>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t k = 0; k < got.size(); ++k) {
    ASSERT_EQ(got[k].row0, want[k].row0) << what << " chunk " << k;
    ASSERT_EQ(got[k].rows, want[k].rows) << what << " chunk " << k;
    ASSERT_EQ(got[k].cols, want[k].cols) << what << " chunk " << k;
    const std::size_t bytes = want[k].theta.size() * sizeof(float);
    EXPECT_EQ(0, std::memcmp(got[k].theta.data(), want[k].theta.data(), bytes)) << what << " θ of chunk " << k;
    EXPECT_EQ(0, std::memcmp(got[k].plus.data(), want[k].plus.data(), bytes)) << what << " W+ of chunk " << k;
    EXPECT_EQ(0, std::memcmp(got[k].minus.data(), want[k].minus.data(), bytes)) << what << " W- of chunk " << k;
  }
}

BlockWork update_work(uint64_t seed, float grad, kernels::ZDist dist = kernels::ZDist::Gaussian) {
  BlockWork w;
  w.dist = dist;
  w.update = UpdateRecord(1, seed, 1e-2f, grad);
  w.weight_decay = 0.1f;
  return w;
}

struct StreamCase {
  std::string model;
  DType storage;
  bool overlap;
  int64_t chunk_rows;
};

class DiskStream : public ::testing::TestWithParam<StreamCase> {};

// A sequence of passes over every streamed tensor: read only, perturb only,
// update + perturb, one-sided, Rademacher, flush-like updates without fn. Large
// updates (lr 1e-2, |g| ~ 1) so that every 16-bit value moves.
TEST_P(DiskStream, ChunksEqualTheRamTier) {
  const StreamCase& c = GetParam();
  Model m(c.model);
  auto ref = reference_store(m, c.storage);
  testing::TempDir tmp;
  DiskStore disk(*m.arch, *m.ckpt, disk_options(tmp.path(), c.storage, c.overlap, 1, {}, c.overlap));

  std::vector<std::pair<std::string, BlockWork>> passes;
  passes.emplace_back("read", BlockWork{});
  BlockWork w = BlockWork{};
  w.perturb = true, w.seed = 101, w.eps = 1e-2f;
  passes.emplace_back("perturb", w);
  w = update_work(7, 0.9f);
  w.perturb = true, w.seed = 102, w.eps = 1e-2f;
  passes.emplace_back("update+perturb", w);
  w = update_work(8, -1.3f);
  w.perturb = true, w.one_sided = true, w.seed = 103, w.eps = 1e-2f;
  passes.emplace_back("update+one-sided", w);
  w = update_work(9, 0.7f, kernels::ZDist::Rademacher);
  w.perturb = true, w.seed = 104, w.eps = 1e-2f;
  passes.emplace_back("rademacher", w);
  passes.emplace_back("update only", update_work(10, 1.1f));
  passes.emplace_back("read after", BlockWork{});

  std::vector<int> ids;
  for (std::size_t id = 0; id < m.arch->tensors().size(); ++id)
    if (disk.streamed(static_cast<int>(id))) ids.push_back(static_cast<int>(id));
  ASSERT_EQ(ids.size(), m.arch->config().tie_word_embeddings ? 1u : 2u);
  const auto before = all_weights(*ref);
  for (int id : ids) {
    const auto& spec = m.arch->tensors()[static_cast<std::size_t>(id)];
    int64_t updates = 0;
    for (const auto& [name, work] : passes) {
      const auto want = stream(*ref, id, work, c.chunk_rows);
      const auto got = stream(disk, id, work, c.chunk_rows);
      expect_same_chunks(got, want, spec.name + " " + name);
      updates += work.update ? 1 : 0;
      EXPECT_EQ(disk.unit_updates()[static_cast<std::size_t>(unit_of(disk, id))], updates) << name;
      // Storage after the pass (what the file holds), also with fn == nullptr.
      std::vector<float> a(static_cast<std::size_t>(spec.numel())), b(a.size());
      disk.read_tensor(id, a.data());
      ref->read_tensor(id, b.data());
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << spec.name << " after " << name;
      ref->stream_rows(id, update_work(20 + static_cast<uint64_t>(updates), 0.5f), 1000, nullptr);
      disk.stream_rows(id, update_work(20 + static_cast<uint64_t>(updates), 0.5f), 1000, nullptr);
      ++updates;
    }
  }
  // Each streamed tensor moved (equality is not the trivial one); blocks are untouched.
  const auto after = all_weights(disk);
  expect_bitwise_equal(after, all_weights(*ref), *m.arch);
  for (int id : ids)
    EXPECT_NE(0, std::memcmp(after[static_cast<std::size_t>(id)].data(), before[static_cast<std::size_t>(id)].data(),
                             before[static_cast<std::size_t>(id)].size() * sizeof(float)));
  for (int b = 0; b < m.arch->num_blocks(); ++b) EXPECT_EQ(disk.unit_updates()[static_cast<std::size_t>(b)], 0);
  disk.sync();
  EXPECT_EQ(disk.counters().rng_draws, [&] {
    // z draws: one per element for an update and one for a perturbation, none for Ones.
    uint64_t n = 0;
    for (int id : ids)
      for (const auto& [name, work] : passes)
        n += static_cast<uint64_t>(m.arch->tensors()[static_cast<std::size_t>(id)].numel()) *
             ((work.update ? 1 : 0) + (work.perturb ? 1 : 0) + 1);  // + the update between passes
    return n;
  }());
}

INSTANTIATE_TEST_SUITE_P(
    Chunks, DiskStream,
    ::testing::Values(StreamCase{"gpt2", DType::F32, true, 7}, StreamCase{"gpt2", DType::F32, false, 7},
                      StreamCase{"gpt2", DType::F32, true, 1}, StreamCase{"gpt2", DType::F32, true, 50},
                      StreamCase{"gpt2", DType::F32, false, 50}, StreamCase{"gpt2", DType::F32, true, 1000},
                      StreamCase{"llama", DType::F32, true, 13}, StreamCase{"llama", DType::F32, false, 64},
                      StreamCase{"gpt2", DType::BF16, true, 7}, StreamCase{"gpt2", DType::BF16, false, 50},
                      StreamCase{"gpt2", DType::BF16, true, 1}, StreamCase{"llama", DType::BF16, true, 50},
                      StreamCase{"llama", DType::BF16, false, 13}, StreamCase{"llama", DType::F16, true, 7},
                      StreamCase{"qwen3", DType::F16, false, 50}, StreamCase{"qwen3", DType::BF16, true, 1000}),
    [](const auto& info) {
      return info.param.model + "_" + std::string(dtype_name(info.param.storage)) +
             (info.param.overlap ? "_overlap" : "_sync") + "_rows" + std::to_string(info.param.chunk_rows);
    });

// Chunks of the rows files of a model whose rows are not page multiples: the
// last chunk is shorter and its page is padded; the file keeps its size.
TEST(DiskStream, FilesKeepTheirSizeAndHeader) {
  Model m("llama");
  testing::TempDir tmp;
  DiskStore disk(*m.arch, *m.ckpt, disk_options(tmp.path(), DType::BF16, true));
  const int head = m.arch->head_weight_id();
  const auto size = fs::file_size(disk.rows_path(head));
  EXPECT_EQ(size, 4096 + (static_cast<uint64_t>(m.arch->tensors()[static_cast<std::size_t>(head)].numel()) * 2 + 4095) / 4096 * 4096);
  disk.stream_rows(head, update_work(1, 1.0f), 11, nullptr);
  disk.sync();
  EXPECT_EQ(fs::file_size(disk.rows_path(head)), size);
  EXPECT_FALSE(fs::exists(tmp / (disk.rows_path(head).filename().string() + ".tmp")));
  const Json man = read_json_file(tmp / DiskStore::kManifest);
  EXPECT_EQ(man["dtype"], "BF16");
  ASSERT_EQ(man["rows"].size(), 2u);
  EXPECT_EQ(man["rows"][1]["name"], m.arch->tensors()[static_cast<std::size_t>(head)].name);
  EXPECT_EQ(man["rows"][1]["updates"], 1);
  EXPECT_EQ(man["rows"][0]["updates"], 0);
}

struct SimulatedCrash {};

struct FaultCase {
  DiskIoPoint point;
  bool overlap;
  DType storage;
};

std::string fault_case_name(const FaultCase& c) {
  static const char* const names[] = {"Read", "WriteTmp", "WriteChunk", "BeforeRename"};
  return std::string(names[static_cast<int>(c.point)]) + (c.overlap ? "_overlap_" : "_sync_") +
         std::string(dtype_name(c.storage));
}

class RowsFault : public ::testing::TestWithParam<FaultCase> {};

// A crash at any point of a rows file's rewrite leaves the old file; the
// working copy reopens with that unit one update behind and catch_up() repairs it.
TEST_P(RowsFault, CrashLeavesTheOldFileAndCatchUpRepairs) {
  const FaultCase& c = GetParam();
  Model m("llama");
  const int head = m.arch->head_weight_id();
  const std::vector<UpdateRecord> log{{1, 31, 1e-2f, 0.8f}, {2, 32, 1e-2f, -0.6f}};
  auto work_of = [&](const UpdateRecord& r) {
    BlockWork w = update_work(0, 0);
    w.update = r;
    return w;
  };
  auto ref = reference_store(m, c.storage);
  update_all_blocks(*ref, work_of(log[0]));
  const auto after1 = all_weights(*ref);
  update_all_blocks(*ref, work_of(log[1]));
  const auto after2 = all_weights(*ref);

  testing::TempDir tmp;
  const fs::path rows_file = tmp / ("rows-" + std::string(5 - std::to_string(head).size(), '0') + std::to_string(head) + ".bin");
  std::atomic<bool> armed{false};
  std::atomic<int> writes{0};
  auto hook = [&](DiskIoPoint p, const fs::path& file) -> int {
    if (!armed || p != c.point || file != rows_file) return 0;
    if (p == DiskIoPoint::WriteChunk && ++writes < 3) return 0;  // the header and the first chunk get out
    throw SimulatedCrash{};
  };
  {
    DiskStore disk(*m.arch, *m.ckpt, disk_options(tmp.path(), c.storage, c.overlap, 1, hook, c.overlap));
    ASSERT_EQ(disk.rows_path(head), rows_file);
    update_all_blocks(disk, work_of(log[0]));
    disk.sync();
    armed = true;
    // Chunks of 5 rows: many writes, none page-aligned.
    EXPECT_THROW(
        {
          disk.stream_rows(head, work_of(log[1]), 5, nullptr);
          disk.sync();
        },
        SimulatedCrash);
    // The store no longer matches the run: later calls report the failure.
    EXPECT_ANY_THROW(disk.sync());
  }
  // What a kill leaves behind once the temp file exists; the next rewrite truncates it.
  EXPECT_EQ(fs::exists(tmp_file(rows_file)), c.point == DiskIoPoint::WriteChunk || c.point == DiskIoPoint::BeforeRename);
  auto disk = DiskStore::open_existing(*m.arch, disk_options(tmp.path(), c.storage, true));
  const int hu = unit_of(*disk, head);
  for (int u = 0; u < disk->num_units(); ++u) EXPECT_EQ(disk->unit_updates()[static_cast<std::size_t>(u)], 1) << u;
  const auto got = all_weights(*disk);
  expect_bitwise_equal(got, after1, *m.arch);
  disk->catch_up(kernels::ZDist::Gaussian, 0.1f, log);
  EXPECT_EQ(disk->unit_updates()[static_cast<std::size_t>(hu)], 2);
  expect_bitwise_equal(all_weights(*disk), after2, *m.arch);
  EXPECT_FALSE(fs::exists(tmp_file(rows_file)));
}

INSTANTIATE_TEST_SUITE_P(Points, RowsFault,
                         ::testing::Values(FaultCase{DiskIoPoint::WriteChunk, true, DType::F32},
                                           FaultCase{DiskIoPoint::WriteChunk, false, DType::BF16},
                                           FaultCase{DiskIoPoint::WriteChunk, true, DType::F16},
                                           FaultCase{DiskIoPoint::BeforeRename, true, DType::BF16},
                                           FaultCase{DiskIoPoint::BeforeRename, false, DType::F32},
                                           FaultCase{DiskIoPoint::WriteTmp, true, DType::F32},
                                           FaultCase{DiskIoPoint::Read, false, DType::BF16}),
                         [](const auto& info) { return fault_case_name(info.param); });

TEST(RowsFault, DiskFullNamesTheTempFileAndKeepsTheOldState) {
  Model m("gpt2");
  testing::TempDir tmp;
  std::atomic<bool> full{false};
  auto hook = [&](DiskIoPoint p, const fs::path& file) {
    return full && p == DiskIoPoint::WriteChunk && file.filename().string().rfind("rows-", 0) == 0 ? ENOSPC : 0;
  };
  DiskStore disk(*m.arch, *m.ckpt, disk_options(tmp.path(), DType::BF16, true, 1, hook));
  const int emb = m.arch->token_embedding_id();
  std::vector<float> before(static_cast<std::size_t>(m.arch->tensors()[static_cast<std::size_t>(emb)].numel()));
  disk.read_tensor(emb, before.data());
  full = true;
  const std::string msg = error_of([&] {
    disk.stream_rows(emb, update_work(3, 1.0f), 20, nullptr);
    disk.sync();
  });
  EXPECT_NE(msg.find(disk.rows_path(emb).filename().string() + ".tmp"), std::string::npos) << msg;
  EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(tmp_file(disk.rows_path(emb))));
  std::vector<float> after(before.size());
  disk.read_tensor(emb, after.data());
  EXPECT_EQ(0, std::memcmp(after.data(), before.data(), before.size() * sizeof(float)));
  EXPECT_EQ(disk.unit_updates()[static_cast<std::size_t>(unit_of(disk, emb))], 0);
  full = false;
  EXPECT_THROW(disk.stream_rows(emb, BlockWork{}, 20, nullptr), Error);  // the store stays failed
}

// A real kill (SIGKILL from the I/O thread, in the middle of rewriting the
// tied embedding during step 3): the working copy reopens with every unit whole
// at 2 or 3 updates, catch_up brings it to 3, and the run continues
// bit-identically to one that never stopped.
TEST(RowsKill, SigkillDuringRowsWriteResumesBitIdentically) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: no inherited threads
  Model m("qwen3");
  const Batch batch = random_lm_batch(m.arch->config().vocab_size, 2, 6, 17);
  constexpr const char* kEnv = "ZOTUNE_TEST_ROWS_KILL_DIR";
  std::optional<testing::TempDir> own;
  fs::path dir;
  if (const char* d = std::getenv(kEnv)) {
    dir = d;  // the re-executed child: the parent's directory
  } else {
    own.emplace();
    dir = own->path();
    ::setenv(kEnv, dir.c_str(), 1);
  }
  EXPECT_EXIT(
      {
        int writes = 0;
        bool armed = false;
        auto hook = [&](DiskIoPoint p, const fs::path& file) {
          if (armed && p == DiskIoPoint::WriteChunk && file.filename().string().rfind("rows-", 0) == 0 && ++writes == 2)
            ::kill(::getpid(), SIGKILL);
          return 0;
        };
        DiskStore disk(*m.arch, *m.ckpt, disk_options(dir, DType::BF16, true, 1, hook));
        ZoEngine e(*m.arch, disk, mezo(), 5);
        run(e, batch, 0, 3, 10);
        armed = true;
        run(e, batch, 3, 4, 10);
        disk.sync();
        std::_Exit(0);  // not reached
      },
      ::testing::KilledBySignal(SIGKILL), "");
  ::unsetenv(kEnv);

  LowBitRamStore ref(*m.arch, *m.ckpt, DType::BF16);
  ZoEngine er(*m.arch, ref, mezo(), 5);
  const auto steps = run(er, batch, 0, 3, 10);
  const auto before = all_weights(ref);  // 2 updates applied, the 3rd pending
  er.flush();
  const auto after = all_weights(ref);
  const auto want = run(er, batch, 3, 5, 10);
  er.flush();

  auto disk = DiskStore::open_existing(*m.arch, disk_options(dir, DType::BF16, true));
  const auto got = all_weights(*disk);
  int behind = 0;
  for (std::size_t id = 0; id < got.size(); ++id) {
    const auto u = static_cast<std::size_t>(unit_of(*disk, static_cast<int>(id)));
    const int64_t n = disk->unit_updates()[u];
    ASSERT_TRUE(n == 2 || n == 3) << disk->unit_path(static_cast<int>(u));
    behind += n == 2;
    const auto& w = n == 3 ? after[id] : before[id];
    EXPECT_EQ(0, std::memcmp(got[id].data(), w.data(), w.size() * sizeof(float))) << m.arch->tensors()[id].name;
  }
  // The embedding (block 0's streamed tensor) died mid-write.
  EXPECT_EQ(disk->unit_updates()[static_cast<std::size_t>(unit_of(*disk, m.arch->token_embedding_id()))], 2);
  EXPECT_GT(behind, 0);
  disk->catch_up(kernels::ZDist::Gaussian, mezo().weight_decay, records_of(steps));
  expect_bitwise_equal(all_weights(*disk), after, *m.arch);
  ZoEngine ed(*m.arch, *disk, mezo(), 5);
  const auto got_steps = run(ed, batch, 3, 5, 10);
  ed.flush();
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got_steps[i].loss_plus, want[i].loss_plus) << i;
  expect_bitwise_equal(all_weights(*disk), all_weights(ref), *m.arch);
}

// `zotune train --offload disk --storage-dtype bf16`, killed with SIGKILL and
// resumed, ends with the bytes of an uninterrupted `--offload ram` bf16 run.
std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string train_args(const fs::path& model, const fs::path& data, const fs::path& out, int steps) {
  return "train --model " + testing::quote(model) + " --data " + testing::quote(data) + " --out " +
         testing::quote(out) + " --steps " + std::to_string(steps) +
         " --batch-size 4 --lr 1e-3 --eps 1e-3 --weight-decay 0.01 --seed 3 --progress log --storage-dtype bf16 ";
}

TEST(RowsKill, TrainBf16OnDiskSurvivesSigkillAndMatchesTheRamTier) {
  testing::TempDir tmp;
  const fs::path model = testing::golden_dir() / "llama";  // untied: embedding and head rows files
  {
    std::ofstream f(tmp / "d.jsonl");
    uint32_t s = 11;
    for (int i = 0; i < 24; ++i) {
      f << "{\"input_ids\": [";
      for (int t = 0; t < 9; ++t) {
        s = s * 1664525u + 1013904223u;
        f << (t ? ", " : "") << 3 + (s >> 8) % 160;
      }
      f << "]}\n";
    }
  }
  const fs::path run_dir = tmp / "run";
  const auto stop = testing::stop_zotune_after(
      {"train", "--model", model.string(), "--data", (tmp / "d.jsonl").string(), "--out", run_dir.string(), "--steps",
       "1000000", "--batch-size", "4", "--lr", "1e-3", "--eps", "1e-3", "--weight-decay", "0.01", "--seed", "3",
       "--progress", "log", "--storage-dtype", "bf16", "--offload", "disk"},
      run_dir / "metrics.jsonl", 5, SIGKILL);
  ASSERT_TRUE(stop.running_at_signal && stop.marker_lines >= 5 && stop.killed_by(SIGKILL))
      << "the kill did not land mid-run (" << stop.marker_lines << " steps logged)";
  ASSERT_TRUE(fs::exists(run_dir / "disk-weights" / DiskStore::kManifest));

  const int total = testing::count_lines(run_dir / "metrics.jsonl") + 3;
  auto r = testing::run_zotune(train_args(model, tmp / "d.jsonl", run_dir, total) + "--offload disk --resume " +
                               testing::quote(run_dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string key = "continuing the disk working copy at step ";
  const auto at = r.output.find(key);
  ASSERT_NE(at, std::string::npos) << r.output;
  EXPECT_GE(std::stoi(r.output.substr(at + key.size())), stop.marker_lines - 1) << r.output;  // not a fresh copy
  r = testing::run_zotune(train_args(model, tmp / "d.jsonl", tmp / "ram", total) + "--offload ram");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string want = slurp(tmp / "ram" / "model.safetensors");
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(slurp(run_dir / "model.safetensors"), want);

  // Resuming the bf16 working copy as fp32 is refused, naming the option.
  r = testing::run_zotune("train --model " + testing::quote(model) + " --data " + testing::quote(tmp / "d.jsonl") +
                          " --out " + testing::quote(run_dir) + " --steps " + std::to_string(total + 2) +
                          " --batch-size 4 --lr 1e-3 --eps 1e-3 --weight-decay 0.01 --seed 3 --offload disk --resume " +
                          testing::quote(run_dir));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--storage-dtype"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace zotune
