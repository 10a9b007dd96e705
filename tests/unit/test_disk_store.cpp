// The disk tier against the fp32 RAM tier: the same ZO runs must give
// bit-identical weights and identical losses (the disk tier only moves bytes),
// with and without the overlapping I/O thread, tied and untied heads. Then
// crash safety of the write-back, resume from the working copy, and errors.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "base/error.h"
#include "io/safetensors.h"
#include "store/disk_store.h"
#include "store/param_store.h"
#include "test_util.h"
#include "train/engine.h"

namespace zotune {
namespace {

namespace fs = std::filesystem;

// B sequences of T tokens drawn from a fixed LCG, every next token scored.
Batch lm_batch(int64_t V, int64_t B, int64_t T, uint32_t seed) {
  Batch b;
  b.B = B;
  b.T = T;
  uint32_t x = seed;
  for (int64_t i = 0; i < B * T; ++i) {
    x = x * 1664525u + 1013904223u;
    b.ids.push_back(static_cast<int32_t>((x >> 8) % static_cast<uint32_t>(V)));
  }
  b.mask.assign(static_cast<std::size_t>(B * T), 1);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t t = 0; t + 1 < T; ++t) {
      b.rows.push_back(i * T + t);
      b.targets.push_back(b.ids[static_cast<std::size_t>(i * T + t + 1)]);
      b.target_seq.push_back(static_cast<int32_t>(i));
    }
  b.num_examples = B;
  return b;
}

MezoOptions mezo(bool one_sided = false) {
  MezoOptions o;
  o.dist = kernels::ZDist::Gaussian;
  o.lr = 1e-3f;
  o.eps = 1e-3f;
  o.weight_decay = 0.1f;
  o.one_sided = one_sided;
  return o;
}

struct Model {
  fs::path dir;
  std::unique_ptr<Architecture> arch;
  std::unique_ptr<Checkpoint> ckpt;
  explicit Model(const std::string& name) : dir(testing::golden_dir() / name) {
    arch = load_architecture(dir);
    ckpt = std::make_unique<Checkpoint>(dir);
  }
};

std::vector<std::vector<float>> all_weights(const ParamStore& s) {
  std::vector<std::vector<float>> w;
  for (std::size_t id = 0; id < s.arch().tensors().size(); ++id) {
    w.emplace_back(static_cast<std::size_t>(s.arch().tensors()[id].numel()));
    s.read_tensor(static_cast<int>(id), w.back().data());
  }
  return w;
}

void expect_bitwise_equal(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b,
                          const Architecture& arch) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(0, std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float))) << arch.tensors()[i].name;
}

// Runs steps [from, to) and returns the results.
std::vector<StepResult> run(ZoEngine& e, const Batch& batch, int64_t from, int64_t to, int64_t total) {
  std::vector<StepResult> r;
  for (int64_t t = from; t < to; ++t) r.push_back(e.step(t, total, batch));
  return r;
}

struct Case {
  std::string model;
  bool overlap;
  int resident;
  bool one_sided;
};

class DiskVsRam : public ::testing::TestWithParam<Case> {};

TEST_P(DiskVsRam, BitIdenticalWeightsAndLosses) {
  const Case& c = GetParam();
  Model m(c.model);
  const Batch batch = lm_batch(m.arch->config().vocab_size, 2, 7, 42);
  constexpr int64_t kSteps = 5;

  RamStore ram(*m.arch, *m.ckpt);
  ZoEngine er(*m.arch, ram, mezo(c.one_sided), 7);
  auto want = run(er, batch, 0, kSteps, kSteps);
  er.flush();

  testing::TempDir tmp;
  // O_DIRECT with the I/O thread, buffered I/O without: both paths covered.
  DiskStore disk(*m.arch, *m.ckpt, {tmp.path(), c.resident, c.overlap, c.overlap, 0, {}});
  ZoEngine ed(*m.arch, disk, mezo(c.one_sided), 7);
  auto got = run(ed, batch, 0, kSteps, kSteps);
  ed.flush();
  disk.sync();

  for (int64_t t = 0; t < kSteps; ++t) {
    EXPECT_EQ(got[static_cast<std::size_t>(t)].loss_plus, want[static_cast<std::size_t>(t)].loss_plus) << "step " << t;
    EXPECT_EQ(got[static_cast<std::size_t>(t)].loss_minus, want[static_cast<std::size_t>(t)].loss_minus) << "step " << t;
  }
  // The run moved the weights (so equality is not the trivial one).
  Model base(c.model);
  RamStore untouched(*base.arch, *base.ckpt);
  EXPECT_NE(0, std::memcmp(all_weights(untouched)[0].data(), all_weights(ram)[0].data(),
                           all_weights(ram)[0].size() * sizeof(float)));
  expect_bitwise_equal(all_weights(disk), all_weights(ram), *m.arch);
  for (int64_t u : disk.block_updates()) EXPECT_EQ(u, kSteps);

  // Every step reads and writes each block once (block 0 of the next step may be prefetched).
  uint64_t file_bytes = 0;
  for (int b = 0; b < m.arch->num_blocks(); ++b) file_bytes += fs::file_size(disk.block_path(b));
  EXPECT_GE(disk.counters().param_bytes_written, file_bytes * (kSteps + 1));  // + the initial copy
  EXPECT_GE(disk.counters().param_bytes_read, file_bytes * (kSteps + 1));
  EXPECT_LE(disk.counters().param_bytes_read, file_bytes * (kSteps + 1) + fs::file_size(disk.block_path(0)) * (kSteps + 1));
}

INSTANTIATE_TEST_SUITE_P(Models, DiskVsRam,
                         ::testing::Values(Case{"gpt2", true, 1, false}, Case{"gpt2", false, 1, false},
                                           Case{"qwen3", true, 1, false}, Case{"qwen3", false, 1, false},
                                           Case{"llama", true, 1, false}, Case{"llama", false, 1, false},
                                           Case{"gpt2", true, 2, true}, Case{"llama", true, 3, false}),
                         [](const auto& info) {
                           return info.param.model + (info.param.overlap ? "_overlap" : "_sync") + "_r" +
                                  std::to_string(info.param.resident) + (info.param.one_sided ? "_onesided" : "");
                         });

TEST(DiskStore, ResumeFromWorkingCopyContinuesBitIdentically) {
  Model m("llama");
  const Batch batch = lm_batch(m.arch->config().vocab_size, 2, 6, 3);
  RamStore ram(*m.arch, *m.ckpt);
  ZoEngine er(*m.arch, ram, mezo(), 11);
  run(er, batch, 0, 3, 5);
  er.flush();
  auto want = run(er, batch, 3, 5, 5);
  er.flush();

  testing::TempDir tmp;
  {
    DiskStore disk(*m.arch, *m.ckpt, {tmp.path(), 1, true, false, 0, {}});
    ZoEngine ed(*m.arch, disk, mezo(), 11);
    run(ed, batch, 0, 3, 5);
    ed.flush();
    disk.sync();
  }
  ASSERT_TRUE(DiskStore::has_working_copy(tmp.path()));
  auto disk = DiskStore::open_existing(*m.arch, {tmp.path(), 1, true, false, 0, {}});
  for (int64_t u : disk->block_updates()) EXPECT_EQ(u, 3);
  ZoEngine ed(*m.arch, *disk, mezo(), 11);
  auto got = run(ed, batch, 3, 5, 5);
  ed.flush();
  EXPECT_EQ(got[1].loss_plus, want[1].loss_plus);
  expect_bitwise_equal(all_weights(*disk), all_weights(ram), *m.arch);
}

struct SimulatedCrash {};

TEST(DiskStore, CrashDuringWriteBackLeavesConsistentBlocksAndCatchUpRepairs) {
  Model m("gpt2");
  const Batch batch = lm_batch(m.arch->config().vocab_size, 2, 6, 5);
  // Reference states after 2 and 3 updates.
  RamStore ram(*m.arch, *m.ckpt);
  ZoEngine er(*m.arch, ram, mezo(), 9);
  auto r = run(er, batch, 0, 2, 10);
  er.flush();
  const auto after2 = all_weights(ram);
  r.push_back(er.step(2, 10, batch));
  er.flush();
  const auto after3 = all_weights(ram);
  std::vector<UpdateRecord> log;
  for (const auto& s : r) log.push_back({s.step, s.seed, s.lr, static_cast<float>(s.grad)});

  testing::TempDir tmp;
  bool armed = false;
  auto hook = [&](DiskIoPoint p, int block) -> int {
    if (armed && p == DiskIoPoint::BeforeRename && block == 2) throw SimulatedCrash{};
    return 0;
  };
  {
    DiskStore disk(*m.arch, *m.ckpt, {tmp.path(), 1, false, false, 0, hook});
    ZoEngine ed(*m.arch, disk, mezo(), 9);
    run(ed, batch, 0, 2, 10);
    ed.flush();
    disk.sync();
    ed.step(2, 10, batch);  // leaves update 3 pending: no write-back yet
    armed = true;
    EXPECT_THROW(ed.step(3, 10, batch), SimulatedCrash);  // dies writing block 2
  }
  ASSERT_TRUE(fs::exists(tmp / "block-00002.bin.tmp"));  // what a kill leaves behind
  // A torn temp file is harmless.
  fs::resize_file(tmp / "block-00002.bin.tmp", 100);

  auto disk = DiskStore::open_existing(*m.arch, {tmp.path(), 1, true, false, 0, {}});
  const std::vector<int64_t> want_updates{3, 3, 2, 2};
  EXPECT_EQ(disk->block_updates(), want_updates);
  // Each block is wholly its old or its new state.
  const auto got = all_weights(*disk);
  for (std::size_t id = 0; id < got.size(); ++id) {
    const auto& want = m.arch->tensors()[id].block < 2 ? after3[id] : after2[id];
    EXPECT_EQ(0, std::memcmp(got[id].data(), want.data(), want.size() * sizeof(float))) << m.arch->tensors()[id].name;
  }
  disk->catch_up(kernels::ZDist::Gaussian, mezo().weight_decay, log);
  for (int64_t u : disk->block_updates()) EXPECT_EQ(u, 3);
  expect_bitwise_equal(all_weights(*disk), after3, *m.arch);
  // A block ahead of the log cannot be brought back.
  log.pop_back();
  EXPECT_THROW(disk->catch_up(kernels::ZDist::Gaussian, 0.1f, log), Error);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(DiskStore, CorruptWorkingCopyIsRejectedNamingTheFile) {
  Model m("qwen3");
  testing::TempDir tmp;
  { DiskStore disk(*m.arch, *m.ckpt, {tmp.path(), 1, true, false, 0, {}}); }
  const fs::path b1 = tmp / "block-00001.bin";
  fs::resize_file(b1, fs::file_size(b1) - 4096);
  std::string msg = error_of([&] { DiskStore::open_existing(*m.arch, {tmp.path(), 1, true, false, 0, {}}); });
  EXPECT_NE(msg.find("block-00001.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;

  // Another model's working copy.
  Model other("llama");
  msg = error_of([&] { DiskStore::open_existing(*other.arch, {tmp.path(), 1, true, false, 0, {}}); });
  EXPECT_NE(msg.find(DiskStore::kManifest), std::string::npos) << msg;

  fs::remove(tmp / DiskStore::kManifest);
  EXPECT_FALSE(DiskStore::has_working_copy(tmp.path()));
  msg = error_of([&] { DiskStore::open_existing(*m.arch, {tmp.path(), 1, true, false, 0, {}}); });
  EXPECT_NE(msg.find("missing manifest"), std::string::npos) << msg;
}

TEST(DiskStore, UnwritableWorkDirNamesThePath) {
  Model m("gpt2");
  testing::TempDir tmp;
  std::ofstream(tmp / "file") << "x";
  const std::string msg = error_of([&] { DiskStore(*m.arch, *m.ckpt, {tmp / "file" / "work", 1, true, false, 0, {}}); });
  EXPECT_NE(msg.find((tmp / "file" / "work").string()), std::string::npos) << msg;
}

TEST(DiskStore, DiskFullDuringBackgroundWriteBackSurfacesNamingTheFile) {
  Model m("llama");
  const Batch batch = lm_batch(m.arch->config().vocab_size, 1, 5, 1);
  testing::TempDir tmp;
  bool full = false;
  auto hook = [&](DiskIoPoint p, int block) { return full && p == DiskIoPoint::WriteTmp && block == 1 ? ENOSPC : 0; };
  DiskStore disk(*m.arch, *m.ckpt, {tmp.path(), 1, true, false, 0, hook});
  ZoEngine e(*m.arch, disk, mezo(), 1);
  e.step(0, 4, batch);
  const auto before = all_weights(disk);
  full = true;
  const std::string msg = error_of([&] {
    e.step(1, 4, batch);
    disk.sync();
  });
  EXPECT_NE(msg.find("block-00001.bin.tmp"), std::string::npos) << msg;
  EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(tmp / "block-00001.bin.tmp"));
  // The failed block keeps its previous state; the store stays failed.
  std::vector<float> w(static_cast<std::size_t>(m.arch->tensors()[static_cast<std::size_t>(disk.block_tensors(1)[0])].numel()));
  disk.read_tensor(disk.block_tensors(1)[0], w.data());
  const auto& want = before[static_cast<std::size_t>(disk.block_tensors(1)[0])];
  EXPECT_EQ(0, std::memcmp(w.data(), want.data(), w.size() * sizeof(float)));
  EXPECT_THROW(e.step(2, 4, batch), Error);
}

// A real full file system, where mounting a small tmpfs is allowed (root).
TEST(DiskStore, RealEnospcOnTinyTmpfs) {
  Model m("gpt2");
  testing::TempDir tmp;
  const fs::path mnt = tmp / "mnt";
  fs::create_directories(mnt);
  // The suite runs as root (scripts/test.sh installs packages with apt-get too).
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k"), 0) << "cannot mount a tmpfs (run the tests as root): " << std::strerror(errno);
  // tmpfs refuses O_DIRECT: this also runs the buffered fallback.
  const std::string msg = error_of([&] { DiskStore(*m.arch, *m.ckpt, {mnt / "work", 1, true, true, 0, {}}); });
  ::umount(mnt.c_str());
  EXPECT_NE(msg.find((mnt / "work").string() + "/block-"), std::string::npos) << msg;
  EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
}

}  // namespace
}  // namespace zotune
