// A sequence's loss terms (what ZoEngine::run_passes hands the data-parallel
// reduction) do not depend on the padded length of its batch nor on the other
// sequences: the batch split into slices of 1, 2 or 3 sequences, each slice
// padded to its own longest as a data-parallel rank pads it, gives the whole
// batch's terms bit for bit, in both perturbed passes (issue #12).
//
// Besides zotune's own kernels (attention's row path, taken by a block of under
// 8 queries, and its block path do the same arithmetic: test_kernels checks it
// on every ISA) this needs GEMMs that give a row the same bits whatever the number of
// rows in the call: OpenBLAS 0.3.21's AVX-512 kernel sets, SkylakeX and
// Cooperlake, with the small "TN" kernel kept out (kernels/gemm_openblas.cpp;
// docs/architecture.md, Bit-identity). OpenBLAS reads OPENBLAS_CORETYPE when it
// loads, so ctest runs this executable once per kernel set with the variable
// set (tests/CMakeLists.txt, AVX-512 hosts only), and every test checks that
// the kernels it runs on are the ones named.
#include <gtest/gtest.h>
#include <strings.h>

#include <cblas.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "data/batch.h"
#include "model/model.h"
#include "store/param_store.h"
#include "test_util.h"
#include "train/engine.h"

namespace zotune {
namespace {

class PaddingInvariance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const char* core = std::getenv("OPENBLAS_CORETYPE");
    ASSERT_NE(core, nullptr) << "run through ctest, which sets OPENBLAS_CORETYPE to SkylakeX or Cooperlake";
    ASSERT_EQ(strcasecmp(openblas_get_corename(), core), 0)
        << "OPENBLAS_CORETYPE=" << core << " but OpenBLAS runs " << openblas_get_corename();
    init_checkpoint(architecture_preset(GetParam(), "tiny"), DType::F32, 7, tmp_ / "model");
    arch_ = load_architecture(tmp_ / "model");
    ckpt_ = std::make_unique<Checkpoint>(tmp_ / "model");
  }

  // Step 0's loss terms of a batch of these sequences, as a rank's engine hands them on.
  PassLosses terms(const std::vector<std::vector<int32_t>>& seqs) const {
    RamStore store(*arch_, *ckpt_);
    MezoOptions opt;
    opt.eps = 1e-3f;
    ZoEngine engine(*arch_, store, opt, 21);
    return engine.run_passes(0, language_model_batch(seqs, 0)).at(0);
  }

  testing::TempDir tmp_;
  std::unique_ptr<Architecture> arch_;
  std::unique_ptr<Checkpoint> ckpt_;
};

TEST_P(PaddingInvariance, SlicesPaddedToTheirOwnLongestGiveTheBatchsLossTerms) {
  testing::TokenStream seq(arch_->config().vocab_size, 5);
  // Alone, 6 and 3 tokens take attention's row path and 35 its last 3 queries
  // (one block of 32, then 3); in the batch (T = 40) every query takes the
  // block path. Slices of 2 and 3 pad to 40 / 35, 12 / 35, 9 and 40 / 12.
  const std::vector<std::vector<int32_t>> seqs = {seq(6), seq(40), seq(35), seq(3), seq(12), seq(9)};

  struct Terms {
    std::vector<double> plus, minus;
  };
  auto run = [&](const std::vector<std::vector<int32_t>>& part) {
    const PassLosses l = terms(part);
    return Terms{l.plus, l.minus};
  };
  const Terms whole = run(seqs);
  ASSERT_EQ(whole.plus.size(), 99u);  // scored tokens: 5 + 39 + 34 + 2 + 11 + 8
  ASSERT_EQ(whole.minus.size(), whole.plus.size());
  for (std::size_t per_rank : {1u, 2u, 3u}) {
    Terms joined;
    for (std::size_t first = 0; first < seqs.size(); first += per_rank) {
      const Terms t = run({seqs.begin() + static_cast<std::ptrdiff_t>(first),
                           seqs.begin() + static_cast<std::ptrdiff_t>(first + per_rank)});
      joined.plus.insert(joined.plus.end(), t.plus.begin(), t.plus.end());
      joined.minus.insert(joined.minus.end(), t.minus.begin(), t.minus.end());
    }
    ASSERT_EQ(joined.plus.size(), whole.plus.size());
    ASSERT_EQ(joined.minus.size(), whole.minus.size());
    for (std::size_t i = 0; i < whole.plus.size(); ++i) {
      EXPECT_EQ(joined.plus[i], whole.plus[i]) << per_rank << " sequence(s) per slice: L+ term " << i;
      EXPECT_EQ(joined.minus[i], whole.minus[i]) << per_rank << " sequence(s) per slice: L- term " << i;
    }
  }
}

// A rank scoring more rows than one lm_head product takes (16 MB of logits:
// 8192 rows of the tiny model's 512-token chunk) cuts the same vocabulary
// chunks as one scoring few: 40 sequences of 256 tokens (10200 scored rows,
// two row blocks per chunk) against slices of 20 (5100 rows, one block).
// Before, the chunk shrank with the row count, which changed the order the
// logsumexp was combined in.
TEST_P(PaddingInvariance, ARankWithManyRowsCutsTheHeadAsOneWithFew) {
  testing::TokenStream seq(arch_->config().vocab_size, 9);
  std::vector<std::vector<int32_t>> seqs;
  for (int i = 0; i < 40; ++i) seqs.push_back(seq(256));
  auto run = [&](std::size_t first, std::size_t count) {
    const auto b = seqs.begin() + static_cast<std::ptrdiff_t>(first);
    return terms({b, b + static_cast<std::ptrdiff_t>(count)}).plus;
  };
  const std::vector<double> whole = run(0, 40);
  ASSERT_EQ(whole.size(), 40u * 255u);
  std::vector<double> joined = run(0, 20);
  const std::vector<double> second = run(20, 20);
  joined.insert(joined.end(), second.begin(), second.end());
  ASSERT_EQ(joined.size(), whole.size());
  for (std::size_t i = 0; i < whole.size(); ++i) ASSERT_EQ(joined[i], whole[i]) << "L+ term " << i;
}

INSTANTIATE_TEST_SUITE_P(Architectures, PaddingInvariance, ::testing::Values("gpt2", "opt", "llama", "qwen3"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace zotune
