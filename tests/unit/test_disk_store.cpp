// The disk tier under the ZO engine against the RAM tiers: the same runs must
// give bit-identical weights and identical losses (fp32 files against RamStore,
// bf16/fp16 files against LowBitRamStore: the disk tier only moves bytes), with
// and without the overlapping I/O thread, tied and untied heads. Then crash
// safety of the write-back, resume from the working copy, and errors.
// Streamed tensors chunk by chunk: test_disk_stream.cpp.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "base/error.h"
#include "io/safetensors.h"
#include "store/disk_store.h"
#include "store/param_store.h"
#include "disk_test_util.h"
#include "test_util.h"
#include "train/engine.h"

namespace zotune {
namespace {

using namespace disktest;

struct Case {
  std::string model;
  bool overlap;
  int resident;
  bool one_sided;
  DType storage = DType::F32;
};

class DiskVsRam : public ::testing::TestWithParam<Case> {};

TEST_P(DiskVsRam, BitIdenticalWeightsAndLosses) {
  const Case& c = GetParam();
  Model m(c.model);
  const Batch batch = random_lm_batch(m.arch->config().vocab_size, 2, 7, 42);
  constexpr int64_t kSteps = 5;

  auto ref = reference_store(m, c.storage);
  ZoEngine er(*m.arch, *ref, mezo(c.one_sided), 7);
  auto want = run(er, batch, 0, kSteps, kSteps);
  er.flush();

  testing::TempDir tmp;
  // O_DIRECT with the I/O thread, buffered I/O without: both paths covered.
  DiskStore disk(*m.arch, *m.ckpt, disk_options(tmp.path(), c.storage, c.overlap, c.resident, {}, c.overlap));
  EXPECT_EQ(disk.storage_dtype(), c.storage);
  ZoEngine ed(*m.arch, disk, mezo(c.one_sided), 7);
  auto got = run(ed, batch, 0, kSteps, kSteps);
  ed.flush();
  disk.sync();

  for (int64_t t = 0; t < kSteps; ++t) {
    EXPECT_EQ(got[static_cast<std::size_t>(t)].loss_plus, want[static_cast<std::size_t>(t)].loss_plus) << "step " << t;
    EXPECT_EQ(got[static_cast<std::size_t>(t)].loss_minus, want[static_cast<std::size_t>(t)].loss_minus) << "step " << t;
  }
  // The run moved every tensor (so equality is not the trivial one).
  const auto trained = all_weights(*ref);
  const auto untouched = all_weights(*reference_store(m, c.storage));
  for (std::size_t id = 0; id < trained.size(); ++id)
    EXPECT_NE(0, std::memcmp(untouched[id].data(), trained[id].data(), trained[id].size() * sizeof(float)))
        << m.arch->tensors()[id].name;
  expect_bitwise_equal(all_weights(disk), trained, *m.arch);
  ASSERT_EQ(disk.num_units(), m.arch->num_blocks() + (m.arch->config().tie_word_embeddings ? 1 : 2));
  for (int64_t u : disk.unit_updates()) EXPECT_EQ(u, kSteps);

  // Every unit is written once per update (+ the initial copy); blocks are read
  // once per step and flush (block 0 of the next step may be prefetched once
  // more); a streamed tensor is read whole per pass: embedding and head every
  // step (a tied one twice), once by flush.
  const int N = m.arch->num_blocks();
  uint64_t all_files = 0, block_files = 0, rows_reads = 0, streams = 0;
  for (int u = 0; u < disk.num_units(); ++u) {
    const uint64_t bytes = fs::file_size(disk.unit_path(u));
    EXPECT_EQ(bytes % 4096, 0u) << disk.unit_path(u);
    all_files += bytes;
    if (u < N) block_files += bytes;
  }
  const int emb = m.arch->token_embedding_id(), head = m.arch->head_weight_id();
  for (int id : emb == head ? std::vector<int>{emb} : std::vector<int>{emb, head}) {
    const uint64_t passes = emb == head ? 2 * kSteps + 1 : kSteps + 1;
    rows_reads += fs::file_size(disk.rows_path(id)) * passes;
    streams += passes;
  }
  EXPECT_EQ(disk.counters().param_bytes_written, all_files * (kSteps + 1));
  const uint64_t least = block_files * (kSteps + 1) + rows_reads;
  EXPECT_GE(disk.counters().param_bytes_read, least);
  const uint64_t chunks = static_cast<uint64_t>(m.arch->config().vocab_size / 64 + 1);
  EXPECT_LE(disk.counters().param_bytes_read,
            least + fs::file_size(disk.block_path(0)) * (kSteps + 1) + streams * chunks * 4096);
  // The z draws of the fp32 RAM tier (both working copies from one draw), plus,
  // two-sided, one more draw per block parameter and step: the disk tier is
  // lean and makes W- from the staged block after the plus pass.
  RamStore counted(*m.arch, *m.ckpt);
  ZoEngine ec(*m.arch, counted, mezo(c.one_sided), 7);
  run(ec, batch, 0, kSteps, kSteps);
  ec.flush();
  uint64_t block_params = 0;
  for (int b = 0; b < N; ++b) block_params += static_cast<uint64_t>(disk.block_numel(b));
  EXPECT_EQ(disk.counters().rng_draws, counted.counters().rng_draws + (c.one_sided ? 0 : kSteps * block_params));
  EXPECT_EQ(disk.counters().rounding_draws, ref->counters().rounding_draws);
  if (c.storage != DType::F32) {
    EXPECT_GT(disk.counters().rounding_draws, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, DiskVsRam,
                         ::testing::Values(Case{"gpt2", true, 1, false}, Case{"gpt2", false, 1, false},
                                           Case{"qwen3", true, 1, false}, Case{"qwen3", false, 1, false},
                                           Case{"llama", true, 1, false}, Case{"llama", false, 1, false},
                                           Case{"gpt2", true, 2, true}, Case{"llama", true, 3, false},
                                           Case{"gpt2", true, 1, false, DType::BF16},
                                           Case{"gpt2", false, 1, false, DType::BF16},
                                           Case{"llama", true, 1, false, DType::BF16},
                                           Case{"llama", false, 2, true, DType::BF16},
                                           Case{"qwen3", true, 1, true, DType::F16},
                                           Case{"llama", false, 1, false, DType::F16},
                                           Case{"opt", true, 1, false, DType::BF16}),
                         [](const auto& info) {
                           return info.param.model + "_" + std::string(dtype_name(info.param.storage)) +
                                  (info.param.overlap ? "_overlap" : "_sync") + "_r" +
                                  std::to_string(info.param.resident) + (info.param.one_sided ? "_onesided" : "");
                         });

class DiskResume : public ::testing::TestWithParam<DType> {};

TEST_P(DiskResume, FromWorkingCopyContinuesBitIdentically) {
  const DType storage = GetParam();
  Model m("llama");  // untied: two rows files
  const Batch batch = random_lm_batch(m.arch->config().vocab_size, 2, 6, 3);
  auto ref = reference_store(m, storage);
  ZoEngine er(*m.arch, *ref, mezo(), 11);
  run(er, batch, 0, 3, 5);
  er.flush();
  auto want = run(er, batch, 3, 5, 5);
  er.flush();

  testing::TempDir tmp;
  {
    DiskStore disk(*m.arch, *m.ckpt, disk_options(tmp.path(), storage, true, 1, {}, false));
    ZoEngine ed(*m.arch, disk, mezo(), 11);
    run(ed, batch, 0, 3, 5);
    ed.flush();
    disk.sync();
  }
  ASSERT_TRUE(DiskStore::has_working_copy(tmp.path()));
  auto disk = DiskStore::open_existing(*m.arch, disk_options(tmp.path(), storage, true, 1, {}, false));
  EXPECT_EQ(disk->storage_dtype(), storage);
  for (int64_t u : disk->unit_updates()) EXPECT_EQ(u, 3);
  ZoEngine ed(*m.arch, *disk, mezo(), 11);
  auto got = run(ed, batch, 3, 5, 5);
  ed.flush();
  EXPECT_EQ(got[1].loss_plus, want[1].loss_plus);
  expect_bitwise_equal(all_weights(*disk), all_weights(*ref), *m.arch);

  // The working copy is not reopened with another storage dtype.
  disk.reset();
  const std::string msg = error_of([&] {
    DiskStore::open_existing(*m.arch, disk_options(tmp.path(), storage == DType::F32 ? DType::BF16 : DType::F32, true));
  });
  EXPECT_NE(msg.find(DiskStore::kManifest), std::string::npos) << msg;
  EXPECT_NE(msg.find("--storage-dtype"), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(Dtypes, DiskResume, ::testing::Values(DType::F32, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

struct SimulatedCrash {};

TEST(DiskStore, CrashDuringWriteBackLeavesConsistentBlocksAndCatchUpRepairs) {
  Model m("gpt2");
  const Batch batch = random_lm_batch(m.arch->config().vocab_size, 2, 6, 5);
  // Reference states after 2 and 3 updates.
  RamStore ram(*m.arch, *m.ckpt);
  ZoEngine er(*m.arch, ram, mezo(), 9);
  auto r = run(er, batch, 0, 2, 10);
  er.flush();
  const auto after2 = all_weights(ram);
  r.push_back(er.step(2, 10, batch));
  er.flush();
  const auto after3 = all_weights(ram);
  std::vector<UpdateRecord> log = records_of(r);

  testing::TempDir tmp;
  bool armed = false;
  auto hook = [&](DiskIoPoint p, const fs::path& file) -> int {
    if (armed && p == DiskIoPoint::BeforeRename && file.filename() == "block-00002.bin") throw SimulatedCrash{};
    return 0;
  };
  {
    DiskStore disk(*m.arch, *m.ckpt, disk_options(tmp.path(), DType::F32, false, 1, hook, false));
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

  auto disk = DiskStore::open_existing(*m.arch, disk_options(tmp.path(), DType::F32, true));
  // Blocks 0, 1 and the (tied) embedding, streamed at block 0, hold update 3.
  const std::vector<int64_t> want_updates{3, 3, 2, 2, 3};
  EXPECT_EQ(disk->unit_updates(), want_updates);
  // Each unit is wholly its old or its new state.
  const auto got = all_weights(*disk);
  for (std::size_t id = 0; id < got.size(); ++id) {
    const int u = unit_of(*disk, static_cast<int>(id));
    const auto& want = want_updates[static_cast<std::size_t>(u)] == 3 ? after3[id] : after2[id];
    EXPECT_EQ(0, std::memcmp(got[id].data(), want.data(), want.size() * sizeof(float))) << m.arch->tensors()[id].name;
  }
  disk->catch_up(kernels::ZDist::Gaussian, mezo().weight_decay, log);
  for (int64_t u : disk->unit_updates()) EXPECT_EQ(u, 3);
  expect_bitwise_equal(all_weights(*disk), after3, *m.arch);
  // A unit ahead of the log cannot be brought back.
  log.pop_back();
  const std::string msg = error_of([&] { disk->catch_up(kernels::ZDist::Gaussian, 0.1f, log); });
  EXPECT_NE(msg.find("more than the 2 of the update log"), std::string::npos) << msg;
}

TEST(DiskStore, CorruptWorkingCopyIsRejectedNamingTheFile) {
  Model m("qwen3");
  testing::TempDir tmp;
  { DiskStore disk(*m.arch, *m.ckpt, disk_options(tmp.path(), DType::F32, true)); }
  const fs::path b1 = tmp / "block-00001.bin";
  fs::resize_file(b1, fs::file_size(b1) - 4096);
  std::string msg = error_of([&] { DiskStore::open_existing(*m.arch, disk_options(tmp.path(), DType::F32, true)); });
  EXPECT_NE(msg.find("block-00001.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;

  // Another model's working copy.
  Model other("llama");
  msg = error_of([&] { DiskStore::open_existing(*other.arch, disk_options(tmp.path(), DType::F32, true)); });
  EXPECT_NE(msg.find(DiskStore::kManifest), std::string::npos) << msg;

  fs::remove(tmp / DiskStore::kManifest);
  EXPECT_FALSE(DiskStore::has_working_copy(tmp.path()));
  msg = error_of([&] { DiskStore::open_existing(*m.arch, disk_options(tmp.path(), DType::F32, true)); });
  EXPECT_NE(msg.find("missing manifest"), std::string::npos) << msg;
}

TEST(DiskStore, CorruptRowsFileIsRejectedNamingTheFile) {
  Model m("llama");
  testing::TempDir tmp;
  fs::path rows;
  {
    DiskStore disk(*m.arch, *m.ckpt, disk_options(tmp.path(), DType::BF16, true));
    rows = disk.rows_path(m.arch->head_weight_id());
  }
  // Another tensor's header in the head's file.
  {
    std::fstream f(rows, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    const int64_t wrong = 0;
    f.write(reinterpret_cast<const char*>(&wrong), sizeof wrong);
  }
  std::string msg = error_of([&] { DiskStore::open_existing(*m.arch, disk_options(tmp.path(), DType::BF16, true)); });
  EXPECT_NE(msg.find(rows.filename().string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("bad header"), std::string::npos) << msg;
  fs::resize_file(rows, 4096);
  msg = error_of([&] { DiskStore::open_existing(*m.arch, disk_options(tmp.path(), DType::BF16, true)); });
  EXPECT_NE(msg.find(rows.filename().string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  fs::remove(rows);
  msg = error_of([&] { DiskStore::open_existing(*m.arch, disk_options(tmp.path(), DType::BF16, true)); });
  EXPECT_NE(msg.find(rows.filename().string()), std::string::npos) << msg;
}

// Flips `n` bytes of `file` at `offset` (xor 0x5a): what a bad disk or another program does.
void flip_bytes(const fs::path& file, uint64_t offset, int n = 4) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  for (int i = 0; i < n; ++i) {
    f.seekg(static_cast<std::streamoff>(offset + static_cast<uint64_t>(i)));
    const char c = static_cast<char>(f.get() ^ 0x5a);
    f.seekp(static_cast<std::streamoff>(offset + static_cast<uint64_t>(i)));
    f.put(c);
  }
}

// Every file's header holds a checksum of its payload, written with it (on
// creation, by each block write-back and each rows rewrite): reopening a working
// copy reads every file whole and checks it; --verify-reads checks on every read.
TEST(DiskStore, FlippedBytesFailTheChecksumNamingTheFile) {
  Model m("llama");  // untied: two rows files
  const Batch batch = random_lm_batch(m.arch->config().vocab_size, 2, 7, 42);
  for (const auto& [overlap, storage] : {std::pair{true, DType::F32}, std::pair{false, DType::BF16}}) {
    SCOPED_TRACE(std::string(overlap ? "overlap " : "inline ") + std::string(dtype_name(storage)));
    testing::TempDir tmp;
    fs::path rows, block;
    {
      DiskStore disk(*m.arch, *m.ckpt, disk_options(tmp.path(), storage, overlap));
      ZoEngine e(*m.arch, disk, mezo(), 7);
      run(e, batch, 0, 2, 2);  // every file rewritten since its creation
      e.flush();
      disk.sync();
      rows = disk.rows_path(m.arch->head_weight_id());
      block = disk.block_path(1);
    }
    auto reopen = [&](bool verify) {
      DiskStoreOptions o = disk_options(tmp.path(), storage, overlap);
      o.verify_reads = verify;
      return DiskStore::open_existing(*m.arch, o);
    };
    EXPECT_NO_THROW(reopen(false));
    for (const fs::path& f : {rows, block}) {
      flip_bytes(f, 4096 + 100);
      const std::string msg = error_of([&] { reopen(false); });
      EXPECT_NE(msg.find(f.string() + ": checksum mismatch"), std::string::npos) << msg;
      flip_bytes(f, 4096 + 100);  // restored
    }
    // Damaged while a store has it open: found by the next read with verify_reads only.
    const fs::path good = tmp / "good";
    fs::create_directories(good);
    for (const auto& e : fs::directory_iterator(tmp.path()))
      if (e.path() != good) fs::copy(e.path(), good / e.path().filename());
    for (const fs::path& f : {rows, block}) {
      for (const bool verify : {false, true}) {
        for (const auto& e : fs::directory_iterator(good)) fs::copy_file(e.path(), tmp / e.path().filename(),
                                                                         fs::copy_options::overwrite_existing);
        auto disk = reopen(verify);
        ZoEngine e(*m.arch, *disk, mezo(), 7);
        flip_bytes(f, 4096 + 100, 1);  // a low mantissa byte: the values stay finite
        const std::string msg = error_of([&] {
          run(e, batch, 2, 3, 3);
          e.flush();
          disk->sync();
        });
        if (verify) EXPECT_NE(msg.find(f.string() + ": checksum mismatch"), std::string::npos) << msg;
        else EXPECT_EQ(msg, "(no error)") << "without verify_reads the bytes are used as read";
      }
    }
  }
}

TEST(DiskStore, UnwritableWorkDirNamesThePath) {
  Model m("gpt2");
  testing::TempDir tmp;
  std::ofstream(tmp / "file") << "x";
  const std::string msg =
      error_of([&] { DiskStore(*m.arch, *m.ckpt, disk_options(tmp / "file" / "work", DType::F32, true)); });
  EXPECT_NE(msg.find((tmp / "file" / "work").string()), std::string::npos) << msg;
}

TEST(DiskStore, DiskFullDuringBackgroundWriteBackSurfacesNamingTheFile) {
  Model m("llama");
  const Batch batch = random_lm_batch(m.arch->config().vocab_size, 1, 5, 1);
  testing::TempDir tmp;
  bool full = false;
  auto hook = [&](DiskIoPoint p, const fs::path& file) {
    return full && p == DiskIoPoint::WriteTmp && file.filename() == "block-00001.bin" ? ENOSPC : 0;
  };
  DiskStore disk(*m.arch, *m.ckpt, disk_options(tmp.path(), DType::F32, true, 1, hook, false));
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
  const std::string msg = error_of([&] { DiskStore(*m.arch, *m.ckpt, disk_options(mnt / "work", DType::F32, true)); });
  ::umount(mnt.c_str());
  EXPECT_NE(msg.find((mnt / "work").string() + "/"), std::string::npos) << msg;
  EXPECT_NE(msg.find(".bin.tmp"), std::string::npos) << msg;
  EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
}

}  // namespace
}  // namespace zotune
