// A Comm whose ranks are threads of one process: a test double for the
// data-parallel path (ZoEngine::step with its reduction) without MPI.
// ThreadGroup(world) owns the shared slots; rank(r) is rank r's Comm. The
// threads form one node: share_node() hands every rank the same memory.
#pragma once
#include <barrier>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/error.h"
#include "dist/comm.h"

namespace zotune::testing {

class ThreadGroup {
 public:
  explicit ThreadGroup(int world) : sync_(world), doubles_(static_cast<std::size_t>(world)) {
    for (int r = 0; r < world; ++r) ranks_.push_back(std::make_unique<Rank>(*this, r, world));
  }
  Comm& rank(int r) { return *ranks_[static_cast<std::size_t>(r)]; }
  // What Comm::node_share_room reports on every rank (default: no limit).
  void set_node_room(std::size_t bytes) { room_ = bytes; }

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
    int ranks_on_node() const override { return world_; }
    std::size_t node_share_room() const override { return g_.room_; }
    [[noreturn]] void abort(const std::string& why) override { fail("rank ", rank_, ": ", why); }
    std::unique_ptr<NodeShare> share_node(std::size_t bytes) override {
      if (rank_ == 0) g_.mem_ = std::make_shared<AlignedBuffer<unsigned char>>(bytes);
      g_.sync_.arrive_and_wait();
      auto share = std::make_unique<Share>(g_, rank_, world_, g_.mem_);
      g_.sync_.arrive_and_wait();  // every rank holds the memory before it may change
      return share;
    }

   private:
    ThreadGroup& g_;
    int rank_, world_;
  };

  class Share final : public NodeShare {
   public:
    Share(ThreadGroup& g, int rank, int size, std::shared_ptr<AlignedBuffer<unsigned char>> mem)
        : g_(g), rank_(rank), size_(size), mem_(std::move(mem)) {}
    int node_rank() const override { return rank_; }
    int node_size() const override { return size_; }
    void* data() override { return mem_->data(); }
    std::size_t size() const override { return mem_->size(); }
    void barrier() override { g_.sync_.arrive_and_wait(); }

   private:
    ThreadGroup& g_;
    int rank_, size_;
    std::shared_ptr<AlignedBuffer<unsigned char>> mem_;
  };

  std::barrier<> sync_;
  std::size_t room_ = SIZE_MAX;
  std::shared_ptr<AlignedBuffer<unsigned char>> mem_;
  std::vector<std::vector<double>> doubles_;
  std::vector<uint8_t> blob_;
  std::vector<std::unique_ptr<Rank>> ranks_;
};

}  // namespace zotune::testing
