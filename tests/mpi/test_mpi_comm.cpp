// The MPI Comm's primitives on a real world (run under mpirun -np W; argv[1] = W):
// allgather of uneven lengths in rank order, allreduce_sum in rank order,
// broadcast from a non-zero root, barrier. Exits non-zero on the first mismatch.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/error.h"
#include "dist/comm.h"

namespace {
int failures = 0;
void expect(bool ok, const std::string& what, int rank) {
  if (ok) return;
  std::fprintf(stderr, "rank %d: FAIL: %s\n", rank, what.c_str());
  ++failures;
}
}  // namespace

int main(int argc, char** argv) {
  using zotune::Comm;
  const int want = argc > 1 ? std::atoi(argv[1]) : 0;
  if (!zotune::launched_by_mpi()) {
    std::fprintf(stderr, "run me under mpirun\n");
    return 2;
  }
  Comm& c = zotune::process_comm();
  const int r = c.rank(), W = c.world();
  expect(W == want, "world " + std::to_string(W) + " != " + std::to_string(want), r);
  expect(&c == zotune::started_process_comm(), "started_process_comm is not process_comm", r);

  // Rank k contributes k + 1 values 100k + i: it counts them and their length.
  c.reset_counters();
  std::vector<double> mine;
  for (int i = 0; i <= r; ++i) mine.push_back(100.0 * r + i);
  const std::vector<double> all = c.allgather(mine);
  std::vector<double> expected;
  for (int k = 0; k < W; ++k)
    for (int i = 0; i <= k; ++i) expected.push_back(100.0 * k + i);
  expect(all == expected, "allgather: not every rank's values in rank order", r);
  expect(c.counters().bytes_sent == sizeof(int) + 8u * static_cast<unsigned>(r + 1) && c.counters().collectives == 1,
         "counters: an allgather of " + std::to_string(r + 1) + " doubles counted " +
             std::to_string(c.counters().bytes_sent) + " bytes",
         r);

  // Every rank gets the sum added in rank order (large terms of both signs, so
  // rounding is involved), the same value as this loop computes locally.
  double v[2] = {(r % 2 ? -1e16 : 1e16) + 1.0, 0.25 * r};
  c.allreduce_sum({v, 2});
  double s0 = 0, s1 = 0;
  for (int k = 0; k < W; ++k) {
    s0 = k == 0 ? (1e16 + 1.0) : s0 + ((k % 2 ? -1e16 : 1e16) + 1.0);
    s1 = k == 0 ? 0.0 : s1 + 0.25 * k;
  }
  expect(v[0] == s0 && v[1] == s1, "allreduce_sum: not the rank-order sum", r);

  // Broadcast from the last rank: 1000 bytes; receivers start with other sizes.
  std::vector<uint8_t> blob(static_cast<std::size_t>(r * 7));
  if (r == W - 1) {
    blob.resize(1000);
    for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<uint8_t>(i * 31 + 7);
  }
  c.reset_counters();
  c.broadcast(blob, W - 1);
  // The root sends its blob and its size; the receivers send nothing.
  expect(c.counters().bytes_sent == (r == W - 1 ? 1000u + 8u : 0u) && c.counters().collectives == 1,
         "counters: a broadcast counted " + std::to_string(c.counters().bytes_sent) + " bytes", r);
  bool same = blob.size() == 1000;
  for (std::size_t i = 0; same && i < blob.size(); ++i) same = blob[i] == static_cast<uint8_t>(i * 31 + 7);
  expect(same, "broadcast: the root's blob did not arrive", r);
  try {
    c.broadcast(blob, W);
    expect(false, "broadcast to a root outside the world did not throw", r);
  } catch (const zotune::Error&) {
  }
  c.barrier();
  if (r == 0 && failures == 0) std::printf("mpi_comm: ok (%d ranks)\n", W);
  return failures ? 1 : 0;
}
