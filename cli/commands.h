// Sub-command registry. Each cli/cmd_<name>.cpp defines one register_<name>
// that adds a sub-command and its callback (the callback may throw zotune::Error).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "dist/comm.h"
#include "dist/layout.h"
#include "kernels/zo_kernels.h"
#include "store/store_factory.h"
#include "train/layout_plan.h"

namespace zotune::cli {

// Sub-commands set this from their callback; main runs it after parsing, so
// exceptions surface in main's single catch.
void set_action(std::function<void()> action);
// For commands with their own exit code (train: 130 after SIGINT).
void set_action_with_status(std::function<int()> action);
void register_all(CLI::App& app);
int run_selected(CLI::App& app);

// Shared options of the parameter tiers (train, bench).
void add_store_options(CLI::App& cmd, std::string& offload, std::string& storage_dtype, StoreOptions& store,
                       std::string& overlap);
// --share-node-weights / --no-share-node-weights (train, bench): one stored θ
// per node (store/node_shared_store.h) or one per rank; neither: the default
// of resolve_node_sharing (store/store_factory.h).
void add_share_option(CLI::App& cmd, NodeSharing& sharing);
void apply_store_options(const std::string& offload, const std::string& storage_dtype, const std::string& overlap,
                         StoreOptions& out);
// --perturbation NAME -> z's distribution (train, bench).
kernels::ZDist parse_perturbation(const std::string& name);
// --data-parallel D, --pert-parallel P, --direction-groups G (train, bench).
void add_layout_options(CLI::App& cmd, RankLayout& layout);
// The process context of a run laid out as `layout` (dist/layout.h): the world
// the launcher started must be exactly D·P·G ranks (a clear error before any
// work otherwise). With `threads` 0 and several ranks on this node, each rank
// gets its share of the cores (OMPI_COMM_WORLD_LOCAL_SIZE).
Comm& layout_comm(const RankLayout& layout, int& threads);
// The latency model of the planned collectives (train/layout_plan.h):
// --net-latency-us, --net-gbit (negative: the default for the node count).
struct NetworkArgs {
  double latency_us = -1, gbit = -1;
};
void add_network_options(CLI::App& cmd, NetworkArgs& net);
NetworkModel network_of(const NetworkArgs& net, int nodes);
// "4G", "512M", "1.5GB", "123456" -> bytes; errors name the flag.
uint64_t parse_size(const std::string& text, const char* flag);

void register_inspect(CLI::App& app);
void register_forward(CLI::App& app);
void register_generate(CLI::App& app);
void register_init(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_bench(CLI::App& app);
void register_train(CLI::App& app);
void register_replay(CLI::App& app);
void register_eval(CLI::App& app);

}  // namespace zotune::cli
