#include "commands.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "base/error.h"
#include "zo/mezo.h"

namespace zotune::cli {

namespace {
std::function<int()>& action() {
  static std::function<int()> a;
  return a;
}
}  // namespace

void set_action(std::function<void()> a) {
  action() = [a = std::move(a)] {
    a();
    return 0;
  };
}
void set_action_with_status(std::function<int()> a) { action() = std::move(a); }

void register_all(CLI::App& app) {
  register_inspect(app);
  register_forward(app);
  register_generate(app);
  register_init(app);
  register_tokenize(app);
  register_bench(app);
  register_train(app);
  register_replay(app);
  register_eval(app);
}

void add_layout_options(CLI::App& cmd, RankLayout& layout) {
  cmd.add_option("--data-parallel", layout.data,
                 "ranks that split each global batch (run as mpirun -np N zotune ... --data-parallel N)")
      ->capture_default_str();
  cmd.add_option("--pert-parallel", layout.pert,
                 "2: a pair of ranks runs the +εz and the -εz pass of each step (ranks × 2)")
      ->capture_default_str();
  cmd.add_option("--direction-groups", layout.groups,
                 "groups of ranks that share out the --directions of a step (ranks × G; docs/architecture.md)")
      ->capture_default_str();
}

void add_network_options(CLI::App& cmd, NetworkArgs& net) {
  cmd.add_option("--net-latency-us", net.latency_us,
                 "planned collectives: latency per round in µs (default 2 on one node, 50 across nodes)");
  cmd.add_option("--net-gbit", net.gbit, "planned collectives: bandwidth in Gbit/s (default 40 on one node, 10 across)");
}

NetworkModel network_of(const NetworkArgs& net, int nodes) {
  std::optional<double> lat, gbit;
  if (net.latency_us >= 0) lat = net.latency_us;
  if (net.gbit >= 0) gbit = net.gbit;
  return network_model(nodes, lat, gbit);
}

Comm& layout_comm(const RankLayout& layout, int& threads) {
  check(layout.data >= 1, "--data-parallel must be >= 1, not ", layout.data);
  check(layout.pert == 1 || layout.pert == 2, "--pert-parallel must be 1 or 2, not ", layout.pert);
  check(layout.groups >= 1, "--direction-groups must be >= 1, not ", layout.groups);
  const int ranks = layout.ranks();
  Comm& comm = process_comm();
  if (comm.world() != ranks) {
    if (comm.world() == 1)
      fail(layout.flags(), " needs ", ranks, " processes: run it as mpirun -np ", ranks, " zotune ...");
    fail("the launcher started ", comm.world(), " processes, but the layout (", layout.flags(), ") has ", ranks,
         " ranks; change the layout or run mpirun -np ", ranks);
  }
  if (threads == 0 && comm.world() > 1) {
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    const int per_node = local ? std::max(1, std::atoi(local)) : 1;
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::max(1, cores / per_node);
  }
  return comm;
}

void add_store_options(CLI::App& cmd, std::string& offload, std::string& storage_dtype, StoreOptions& store,
                       std::string& overlap) {
  cmd.add_option("--offload", offload, "where weights live: none (fp32 RAM), ram (storage dtype in RAM), disk")
      ->capture_default_str();
  cmd.add_option("--storage-dtype", storage_dtype, "fp32, bf16 or fp16 (bf16/fp16 round stochastically)")
      ->capture_default_str();
  cmd.add_option("--resident-blocks", store.resident_blocks, "blocks resident in the working tier at once")
      ->capture_default_str();
  cmd.add_flag("--verify-reads", store.verify_reads,
               "disk tier: check each file's checksum on every read (always checked when a working copy is reopened)");
  cmd.add_option("--overlap", overlap, "on: prefetch and write-back overlap compute; off: for measuring")
      ->capture_default_str();
}

void add_share_option(CLI::App& cmd, NodeSharing& sharing) {
  auto* on = cmd.add_flag_callback(
      "--share-node-weights", [&sharing] { sharing = NodeSharing::On; },
      "the ranks of a node keep one copy of the weights in shared memory, each with its own working copies "
      "(RAM tiers; the default when a node runs several ranks and /dev/shm has room; docs/architecture.md, Processes)");
  auto* off = cmd.add_flag_callback(
      "--no-share-node-weights", [&sharing] { sharing = NodeSharing::Off; },
      "every rank keeps its own copy of the weights, also when it shares a node with others");
  on->excludes(off);
}

void apply_store_options(const std::string& offload, const std::string& storage_dtype, const std::string& overlap,
                         StoreOptions& out) {
  if (offload == "none") out.offload = Offload::None;
  else if (offload == "ram") out.offload = Offload::Ram;
  else if (offload == "disk") out.offload = Offload::Disk;
  else fail("--offload: unknown value '", offload, "' (none, ram, disk)");
  auto d = dtype_from_cli(storage_dtype);
  if (!d || !is_float_storage(*d)) fail("--storage-dtype: unknown value '", storage_dtype, "' (fp32, bf16, fp16)");
  out.storage_dtype = *d;
  if (out.offload == Offload::None && out.storage_dtype != DType::F32) out.offload = Offload::Ram;
  if (overlap == "on") out.overlap = true;
  else if (overlap == "off") out.overlap = false;
  else fail("--overlap: unknown value '", overlap, "' (on, off)");
  if (out.resident_blocks < 1) fail("--resident-blocks must be >= 1");
  if (out.node_sharing == NodeSharing::On && out.offload == Offload::Disk)
    fail("--share-node-weights keeps one copy of the weights in RAM per node; it does not combine with --offload disk");
}

kernels::ZDist parse_perturbation(const std::string& name) {
  const auto d = zdist_from_name(name);
  if (!d) fail("--perturbation: unknown value '", name, "' (gaussian, rademacher, ones)");
  return *d;
}

uint64_t parse_size(const std::string& text, const char* flag) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    fail(flag, ": '", text, "' is not a size (e.g. 4G, 512M, 1.5GB)");
  }
  std::string unit = text.substr(used);
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (unit.size() == 2 && (unit[1] == 'B')) unit.resize(1);
  if (unit == "IB" || unit == "B") unit.clear();
  double mult = 1;
  if (unit == "K" || unit == "KIB") mult = 1024.0;
  else if (unit == "M" || unit == "MIB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GIB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TIB") mult = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty()) fail(flag, ": unknown unit in '", text, "' (K, M, G, T)");
  if (!(v > 0) || !std::isfinite(v)) fail(flag, ": '", text, "' must be a positive size");
  // 2^60 bytes (1 EiB) is beyond any machine; larger values would not fit the byte count.
  if (v * mult > 0x1p60) fail(flag, ": '", text, "' is larger than 1 EiB; give a size this machine could have");
  return static_cast<uint64_t>(v * mult);
}

int run_selected(CLI::App&) { return action() ? action()() : 0; }

}  // namespace zotune::cli
