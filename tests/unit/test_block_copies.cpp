// BlockSession::copy(k) for k = 0..2q-1 (q directions in one acquire): copy 2d
// = θ + εz(seed_d), copy 2d+1 = θ − εz(seed_d) (θ when one-sided), θ after
// the work's update, in every tier: the RAM storage with the fp32 codec (a
// pair, remade per direction) and a 16-bit one (lean), and the disk tier
// against them bit for bit. A lean tier refuses a copy it has replaced.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "disk_test_util.h"
#include "kernels/zo_kernels.h"
#include "test_util.h"

namespace zotune {
namespace {

using disktest::Model;

BlockWork three_directions(bool one_sided) {
  BlockWork work;
  work.update = UpdateRecord(1, 7, 1e-3f, 0.5f);
  work.weight_decay = 0.1f;
  work.perturb = true;
  work.one_sided = one_sided;
  work.seed = 8;
  work.more_seeds = {901, 77};
  work.eps = 1e-2f;
  return work;
}

// Every copy of every block of `store`, in the order the engine asks for them.
std::vector<std::vector<float>> all_copies(ParamStore& store, const BlockWork& work) {
  std::vector<std::vector<float>> out;
  const auto& table = store.arch().tensors();
  for (int b = 0; b < store.arch().num_blocks(); ++b) {
    BlockSession s = store.acquire(b, work);
    EXPECT_EQ(s.copies(), 2 * work.directions());
    for (int k = 0; k < s.copies(); ++k) {
      const ParamPtrs p = s.copy(k);
      for (int id : store.block_tensors(b)) {
        const float* w = p[static_cast<std::size_t>(id)];
        out.emplace_back(w, w + table[static_cast<std::size_t>(id)].numel());
      }
    }
  }
  store.sync();
  return out;
}

// The copies against θ (read back after the update) ± ε z of each direction.
void expect_copies_of_theta(ParamStore& store, const BlockWork& work) {
  const std::vector<std::vector<float>> got = all_copies(store, work);
  const auto& table = store.arch().tensors();
  std::size_t at = 0;
  for (int b = 0; b < store.arch().num_blocks(); ++b) {
    for (int k = 0; k < 2 * work.directions(); ++k) {
      for (int id : store.block_tensors(b)) {
        const auto n = static_cast<std::size_t>(table[static_cast<std::size_t>(id)].numel());
        std::vector<float> theta(n), z(n);
        store.read_tensor(id, theta.data());
        kernels::zo_fill_z(work.seed_of(k / 2), static_cast<uint32_t>(id), work.dist, 0, static_cast<int64_t>(n),
                           z.data());
        const std::vector<float>& c = got[at++];
        for (std::size_t i = 0; i < n; ++i) {
          const float want = k % 2 == 0 ? theta[i] + work.eps * z[i] : work.one_sided ? theta[i] : theta[i] - work.eps * z[i];
          ASSERT_EQ(c[i], want) << table[static_cast<std::size_t>(id)].name << " copy " << k << " element " << i;
        }
      }
    }
  }
  EXPECT_EQ(at, got.size());
}

TEST(BlockCopies, EveryDirectionInEveryRamCodec) {
  const Model m("llama");
  for (DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (bool one_sided : {false, true}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + (one_sided ? " one-sided" : ""));
      RamStore store(*m.arch, *m.ckpt, dtype);
      expect_copies_of_theta(store, three_directions(one_sided));
    }
}

TEST(BlockCopies, DiskEqualsRamForEveryDirection) {
  const Model m("gpt2");
  for (DType dtype : {DType::F32, DType::BF16})
    for (bool one_sided : {false, true}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + (one_sided ? " one-sided" : ""));
      testing::TempDir dir;
      DiskStore disk(*m.arch, *m.ckpt, disktest::disk_options(dir / "w", dtype, true));
      auto ram = disktest::reference_store(m, dtype);
      const BlockWork work = three_directions(one_sided);
      const auto a = all_copies(disk, work), b = all_copies(*ram, work);
      ASSERT_EQ(a.size(), b.size());
      for (std::size_t i = 0; i < a.size(); ++i)
        ASSERT_EQ(0, std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float))) << "copy list entry " << i;
      disktest::expect_bitwise_equal(disktest::all_weights(disk), disktest::all_weights(*ram), *m.arch);
    }
}

TEST(BlockCopies, LeanTierRefusesAReplacedCopyAndRangeIsChecked) {
  const Model m("llama");
  RamStore lean(*m.arch, *m.ckpt, DType::BF16);
  BlockSession s = lean.acquire(1, three_directions(false));
  s.copy(0);
  s.copy(3);
  EXPECT_THROW(s.copy(2), Error);
  EXPECT_THROW(s.copy(6), Error);
  RamStore pair(*m.arch, *m.ckpt);
  BlockSession p = pair.acquire(1, three_directions(false));
  const float first = p.copy(0)[static_cast<std::size_t>(pair.block_tensors(1)[0])][0];
  p.copy(5);
  EXPECT_EQ(p.copy(0)[static_cast<std::size_t>(pair.block_tensors(1)[0])][0], first);  // a pair is remade on demand
  EXPECT_THROW(p.copy(-1), Error);
}

}  // namespace
}  // namespace zotune
