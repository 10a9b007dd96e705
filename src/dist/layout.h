// How the ranks of a job share a step's work (issue #12). Three factors:
//   D  data slices: each global batch is cut into D consecutive slices
//   P  perturbation halves (1 or 2): with 2, half 0 runs the +εz pass and
//      half 1 the −εz pass of the same slice
//   G  direction groups: the step's K directions (--directions) are cut into
//      G consecutive runs of K/G; group g runs directions [g·K/G, (g+1)·K/G)
// and the world has D·P·G ranks, numbered
//   rank = (g · D + d) · P + half
// so the ranks of one direction group are consecutive and, inside it, rank
// order is slice order. Every rank ends a step with the same record: the loss
// terms of every (direction, pass) gathered in this fixed order.
#pragma once
#include <string>

namespace zotune {

struct RankLayout {
  int data = 1, pert = 1, groups = 1;

  int ranks() const { return data * pert * groups; }
  int half(int rank) const { return rank % pert; }
  int slice(int rank) const { return rank / pert % data; }
  int group(int rank) const { return rank / (pert * data); }
  // "--data-parallel 2 --pert-parallel 2" (the flags that make this layout).
  std::string flags() const {
    std::string s = "--data-parallel " + std::to_string(data);
    if (pert > 1) s += " --pert-parallel " + std::to_string(pert);
    if (groups > 1) s += " --direction-groups " + std::to_string(groups);
    return s;
  }
};

}  // namespace zotune
