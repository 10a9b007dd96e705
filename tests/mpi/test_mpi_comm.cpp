// The MPI Comm's primitives on a real world (run under mpirun -np W; argv[1] = W):
// allgather of uneven lengths in rank order, allreduce_sum in rank order,
// broadcast from a non-zero root, barrier. Every rank runs every test in the
// same order (the collectives must meet), so the tests use EXPECT only: an
// ASSERT returning early on one rank would leave the others waiting. Any
// rank's failure makes its exit code, and so mpirun's, non-zero.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/error.h"
#include "dist/comm.h"

namespace {
int g_want_world = 0;

zotune::Comm& comm() { return zotune::process_comm(); }

TEST(MpiComm, WorldIsTheLaunchedOne) {
  EXPECT_EQ(comm().world(), g_want_world);
  EXPECT_EQ(&comm(), zotune::started_process_comm());
}

// Rank k contributes k + 1 values 100k + i: every rank gets all of them in
// rank order, and counts only its own contribution and length.
TEST(MpiComm, AllgatherOfUnevenLengthsIsInRankOrder) {
  zotune::Comm& c = comm();
  const int r = c.rank(), W = c.world();
  c.reset_counters();
  std::vector<double> mine;
  for (int i = 0; i <= r; ++i) mine.push_back(100.0 * r + i);
  const std::vector<double> all = c.allgather(mine);
  std::vector<double> expected;
  for (int k = 0; k < W; ++k)
    for (int i = 0; i <= k; ++i) expected.push_back(100.0 * k + i);
  EXPECT_EQ(all, expected) << "rank " << r;
  EXPECT_EQ(c.counters().bytes_sent, sizeof(int) + 8u * static_cast<unsigned>(r + 1)) << "rank " << r;
  EXPECT_EQ(c.counters().collectives, 1u) << "rank " << r;
}

// Every rank gets the sum added in rank order (large terms of both signs, so
// rounding is involved), the same value as this loop computes locally.
TEST(MpiComm, AllreduceSumIsTheRankOrderSum) {
  zotune::Comm& c = comm();
  const int r = c.rank(), W = c.world();
  double v[2] = {(r % 2 ? -1e16 : 1e16) + 1.0, 0.25 * r};
  c.allreduce_sum({v, 2});
  double s0 = 0, s1 = 0;
  for (int k = 0; k < W; ++k) {
    s0 = k == 0 ? (1e16 + 1.0) : s0 + ((k % 2 ? -1e16 : 1e16) + 1.0);
    s1 = k == 0 ? 0.0 : s1 + 0.25 * k;
  }
  EXPECT_EQ(v[0], s0) << "rank " << r;
  EXPECT_EQ(v[1], s1) << "rank " << r;
}

// Broadcast from the last rank: 1000 bytes; receivers start with other sizes.
// The root sends its blob and its size; the receivers send nothing.
TEST(MpiComm, BroadcastFromTheLastRank) {
  zotune::Comm& c = comm();
  const int r = c.rank(), W = c.world();
  std::vector<uint8_t> blob(static_cast<std::size_t>(r * 7));
  std::vector<uint8_t> sent(1000);
  for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<uint8_t>(i * 31 + 7);
  if (r == W - 1) blob = sent;
  c.reset_counters();
  c.broadcast(blob, W - 1);
  EXPECT_EQ(c.counters().bytes_sent, r == W - 1 ? 1000u + 8u : 0u) << "rank " << r;
  EXPECT_EQ(c.counters().collectives, 1u) << "rank " << r;
  EXPECT_EQ(blob, sent) << "rank " << r;
  EXPECT_THROW(c.broadcast(blob, W), zotune::Error) << "a root outside the world";
  c.barrier();
}
}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  g_want_world = argc > 1 ? std::atoi(argv[1]) : 0;
  if (!zotune::launched_by_mpi()) {
    std::fprintf(stderr, "run me under mpirun\n");
    return 2;
  }
  comm();  // MPI starts before the first test; every rank prints its own results
  return RUN_ALL_TESTS();
}
