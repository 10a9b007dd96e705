// Helpers shared by the disk-tier tests (test_disk_store.cpp, test_disk_stream.cpp):
// tiny golden models, a deterministic LM batch, whole-store snapshots and the
// reference stores the disk tier must match bit for bit.
#pragma once
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "store/disk_store.h"
#include "store/lowbit_store.h"
#include "store/param_store.h"
#include "test_util.h"
#include "train/engine.h"
#include "zo/mezo.h"
#include "zo/replay.h"

namespace zotune::disktest {

namespace fs = std::filesystem;

using testing::random_lm_batch;

inline MezoOptions mezo(bool one_sided = false) {
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

// The store the disk tier must equal: RamStore for fp32, LowBitRamStore for 16 bits.
inline std::unique_ptr<ParamStore> reference_store(const Model& m, DType storage) {
  if (storage == DType::F32) return std::make_unique<RamStore>(*m.arch, *m.ckpt);
  return std::make_unique<LowBitRamStore>(*m.arch, *m.ckpt, storage);
}

inline DiskStoreOptions disk_options(const fs::path& dir, DType storage, bool overlap, int resident = 1,
                                     DiskFaultHook hook = {}, bool direct = true) {
  DiskStoreOptions o;
  o.work_dir = dir;
  o.resident_blocks = resident;
  o.overlap = overlap;
  o.direct_io = direct;
  o.fault = std::move(hook);
  o.storage_dtype = storage;
  return o;
}

inline std::vector<std::vector<float>> all_weights(const ParamStore& s) {
  std::vector<std::vector<float>> w;
  for (std::size_t id = 0; id < s.arch().tensors().size(); ++id) {
    w.emplace_back(static_cast<std::size_t>(s.arch().tensors()[id].numel()));
    s.read_tensor(static_cast<int>(id), w.back().data());
  }
  return w;
}

inline void expect_bitwise_equal(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b,
                                 const Architecture& arch) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(0, std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float))) << arch.tensors()[i].name;
}

// Runs steps [from, to) and returns the results.
inline std::vector<StepResult> run(ZoEngine& e, const Batch& batch, int64_t from, int64_t to, int64_t total) {
  std::vector<StepResult> r;
  for (int64_t t = from; t < to; ++t) r.push_back(e.step(t, total, batch));
  return r;
}

inline std::vector<UpdateRecord> records_of(const std::vector<StepResult>& steps) {
  std::vector<UpdateRecord> log;
  for (const auto& s : steps) log.push_back({s.step, s.seed, s.lr, static_cast<float>(s.grad)});
  return log;
}

// Applies work.update to every block and streamed tensor of `s`.
inline void update_all_blocks(ParamStore& s, const BlockWork& work) {
  replay(s, work.dist, work.weight_decay, {*work.update});
}

// The unit (DiskStore numbering) that holds tensor `id`.
inline int unit_of(const DiskStore& d, int id) {
  const auto& spec = d.arch().tensors()[static_cast<std::size_t>(id)];
  if (!d.streamed(id)) return spec.block;
  for (int u = d.arch().num_blocks(); u < d.num_units(); ++u)
    if (d.unit_path(u) == d.rows_path(id)) return u;
  return -1;
}

// What a rewrite of `file` writes before renaming it into place.
inline fs::path tmp_file(const fs::path& file) {
  fs::path t = file;
  t += ".tmp";
  return t;
}

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace zotune::disktest
