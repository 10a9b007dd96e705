// A Comm whose ranks are threads of one process: a test double for the
// data-parallel path (ZoEngine::step with its reduction) without MPI.
// ThreadGroup(world) owns the shared slots; rank(r) is rank r's Comm.
#pragma once
#include <barrier>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "dist/comm.h"

namespace zotune::testing {

class ThreadGroup {
 public:
  explicit ThreadGroup(int world) : sync_(world), doubles_(static_cast<std::size_t>(world)) {
    for (int r = 0; r < world; ++r) ranks_.push_back(std::make_unique<Rank>(*this, r, world));
  }
  Comm& rank(int r) { return *ranks_[static_cast<std::size_t>(r)]; }

 private:
  class Rank final : public Comm {
   public:
    Rank(ThreadGroup& g, int rank, int world) : g_(g), rank_(rank), world_(world) {}
    int rank() const override { return rank_; }
    int world() const override { return world_; }
    std::vector<double> allgather(std::span<const double> mine) override {
      g_.doubles_[static_cast<std::size_t>(rank_)].assign(mine.begin(), mine.end());
      g_.sync_.arrive_and_wait();
      std::vector<double> all;
      for (const auto& v : g_.doubles_) all.insert(all.end(), v.begin(), v.end());
      g_.sync_.arrive_and_wait();  // nobody writes a slot before every rank has read them all
      return all;
    }
    void broadcast(std::vector<uint8_t>& blob, int root) override {
      if (rank_ == root) g_.blob_ = blob;
      g_.sync_.arrive_and_wait();
      if (rank_ != root) blob = g_.blob_;
      g_.sync_.arrive_and_wait();
    }
    void barrier() override { g_.sync_.arrive_and_wait(); }
    [[noreturn]] void abort(const std::string& why) override { fail("rank ", rank_, ": ", why); }

   private:
    ThreadGroup& g_;
    int rank_, world_;
  };

  std::barrier<> sync_;
  std::vector<std::vector<double>> doubles_;
  std::vector<uint8_t> blob_;
  std::vector<std::unique_ptr<Rank>> ranks_;
};

}  // namespace zotune::testing
