#include "dist/comm.h"

#include "base/aligned_buffer.h"
#include "base/error.h"

namespace zotune {

void Comm::allreduce_sum(std::span<double> values) {
  const std::vector<double> all = allgather(values);
  const std::size_t n = values.size();
  check(all.size() == n * static_cast<std::size_t>(world()), "allreduce_sum: ranks passed different lengths (",
        all.size(), " values from ", world(), " ranks, ", n, " here)");
  for (std::size_t i = 0; i < n; ++i) {
    double s = all[i];
    for (std::size_t r = 1; r < static_cast<std::size_t>(world()); ++r) s += all[r * n + i];
    values[i] = s;
  }
}

void SingleProcessComm::broadcast(std::vector<uint8_t>& blob, int root) {
  check(root == 0, "broadcast: root rank ", root, " is not in a world of 1");
  count(blob.size());
}

void SingleProcessComm::abort(const std::string& why) { fail(why); }

namespace {

class PrivateNodeShare final : public NodeShare {
 public:
  explicit PrivateNodeShare(std::size_t bytes) : mem_(bytes) {}
  int node_rank() const override { return 0; }
  int node_size() const override { return 1; }
  void* data() override { return mem_.data(); }
  std::size_t size() const override { return mem_.size(); }
  void barrier() override {}

 private:
  AlignedBuffer<unsigned char> mem_;
};

}  // namespace

std::unique_ptr<NodeShare> private_node_share(std::size_t bytes) { return std::make_unique<PrivateNodeShare>(bytes); }

std::unique_ptr<NodeShare> Comm::share_node(std::size_t bytes) { return private_node_share(bytes); }

Comm& single_process_comm() {
  static SingleProcessComm comm;
  return comm;
}

}  // namespace zotune
