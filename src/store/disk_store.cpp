#include "store/disk_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "base/error.h"
#include "base/fs.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/blocks.h"
#include "model/weights.h"
#include "zo/mezo.h"

namespace zotune {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kHeaderFloats = kPage / sizeof(float);
constexpr char kMagic[8] = {'Z', 'O', 'T', 'B', 'L', 'K', '0', '1'};
constexpr const char* kFormat = "zotune-disk-v1";

struct BlockHeader {
  char magic[8];
  int64_t block;
  int64_t numel;
  int64_t updates;
};

uint64_t payload_bytes(int64_t numel) {
  return (static_cast<uint64_t>(numel) * sizeof(float) + kPage - 1) / kPage * kPage;
}
uint64_t file_bytes(int64_t numel) { return kPage + payload_bytes(numel); }

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Closes on scope exit; errors of close() after a successful fdatasync do not lose data.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void pread_all(int fd, void* buf, uint64_t n, uint64_t off, const fs::path& path) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(path.string(), ": read failed: ", errno_text(errno));
    if (r == 0) fail(path.string(), ": file is truncated (", n, " bytes missing at offset ", off, ")");
    p += r;
    n -= static_cast<uint64_t>(r);
    off += static_cast<uint64_t>(r);
  }
}


}  // namespace

float* PageBuffer::ensure(std::size_t n) {
  if (n <= cap_) return p_;
  release();
  const std::size_t bytes = (n * sizeof(float) + kPage - 1) / kPage * kPage;
  p_ = static_cast<float*>(std::aligned_alloc(kPage, bytes));
  if (!p_) throw std::bad_alloc();
  cap_ = bytes / sizeof(float);
  return p_;
}

// ---- construction

DiskStore::DiskStore(const Architecture& arch, DiskStoreOptions opt, bool) : ParamStore(arch), opt_(std::move(opt)) {
  check(opt_.resident_blocks >= 1, "--resident-blocks must be at least 1 (got ", opt_.resident_blocks, ")");
  check(!opt_.work_dir.empty(), "--offload disk needs a work directory");
  init_layout();
}

DiskStore::DiskStore(const Architecture& arch, const Checkpoint& ckpt, DiskStoreOptions opt)
    : DiskStore(arch, std::move(opt), true) {
  std::error_code ec;
  fs::create_directories(opt_.work_dir, ec);
  check(!ec && fs::is_directory(opt_.work_dir), opt_.work_dir.string(),
        ": cannot create the disk tier's work directory: ", ec ? ec.message() : "not a directory");
  // Without a manifest the directory is not a working copy: a crash while
  // streaming the model in leaves nothing that looks complete.
  fs::remove(opt_.work_dir / kManifest, ec);
  const auto& table = arch.tensors();
  Stage& s = *stages_[0];
  for (int b = 0; b < arch.num_blocks(); ++b) {
    const int64_t n = block_numel_[static_cast<std::size_t>(b)];
    float* buf = s.buf.ensure(kHeaderFloats + payload_bytes(n) / sizeof(float));
    float* payload = buf + kHeaderFloats;
    for (int id : block_tensors_[static_cast<std::size_t>(b)]) {
      const auto& spec = table[static_cast<std::size_t>(id)];
      TensorView v = checked_view(arch, ckpt, spec);
      upcast_to_f32(v, payload + tensor_offset_[static_cast<std::size_t>(id)]);
      drop_mapped_pages(v.data, v.nbytes());
    }
    std::memset(payload + n, 0, payload_bytes(n) - static_cast<uint64_t>(n) * sizeof(float));
    s.block = b;
    write_block(s, opt_.initial_updates);
    updates_[static_cast<std::size_t>(b)] = opt_.initial_updates;
  }
  s.block = -1;
  if (s.buf.capacity() > kHeaderFloats + payload_bytes(max_layer_numel_) / sizeof(float)) s.buf.release();
  write_manifest();
  fold_counters();
  if (opt_.overlap) io_ = std::thread([this] { io_loop(); });
}

std::unique_ptr<DiskStore> DiskStore::open_existing(const Architecture& arch, DiskStoreOptions opt) {
  std::unique_ptr<DiskStore> s(new DiskStore(arch, std::move(opt), true));
  s->load_manifest();
  for (int b = 0; b < arch.num_blocks(); ++b) s->updates_[static_cast<std::size_t>(b)] = s->read_header(b);
  if (s->opt_.overlap) s->io_ = std::thread([p = s.get()] { p->io_loop(); });
  return s;
}

bool DiskStore::has_working_copy(const fs::path& work_dir) {
  std::error_code ec;
  return fs::is_regular_file(work_dir / kManifest, ec);
}

void DiskStore::init_layout() {
  const auto& table = arch_.tensors();
  const int N = arch_.num_blocks();
  block_numel_.assign(static_cast<std::size_t>(N), 0);
  tensor_offset_.assign(table.size(), 0);
  for (int b = 0; b < N; ++b)
    for (int id : block_tensors_[static_cast<std::size_t>(b)]) {
      tensor_offset_[static_cast<std::size_t>(id)] = block_numel_[static_cast<std::size_t>(b)];
      block_numel_[static_cast<std::size_t>(b)] += table[static_cast<std::size_t>(id)].numel();
    }
  for (int b = 1; b + 1 < N; ++b) max_layer_numel_ = std::max(max_layer_numel_, block_numel_[static_cast<std::size_t>(b)]);
  pin_block0_ = arch_.head_weight_id() >= 0 && table[static_cast<std::size_t>(arch_.head_weight_id())].block == 0;
  updates_.assign(static_cast<std::size_t>(N), opt_.initial_updates);
  held_.assign(static_cast<std::size_t>(N), nullptr);
  slot_of_.assign(static_cast<std::size_t>(N), nullptr);
  for (int i = 0; i < opt_.resident_blocks + 2; ++i) stages_.push_back(std::make_unique<Stage>());
  ring_.resize(static_cast<std::size_t>(opt_.resident_blocks));
}

DiskStore::~DiskStore() {
  if (io_.joinable()) {
    {
      std::unique_lock lk(mu_);
      drain(lk);
      stop_ = true;
    }
    cv_.notify_all();
    io_.join();
  }
}

fs::path DiskStore::block_path(int block) const {
  char name[32];
  std::snprintf(name, sizeof name, "block-%05d.bin", block);
  return opt_.work_dir / name;
}

// ---- manifest and headers

void DiskStore::write_manifest() {
  const auto& table = arch_.tensors();
  Json m;
  m["format"] = kFormat;
  m["model_type"] = arch_.config().model_type;
  m["dtype"] = "F32";
  Json blocks = Json::array();
  for (int b = 0; b < arch_.num_blocks(); ++b) {
    Json jb;
    jb["file"] = block_path(b).filename().string();
    jb["numel"] = block_numel_[static_cast<std::size_t>(b)];
    jb["updates"] = updates_[static_cast<std::size_t>(b)];
    Json ts = Json::array();
    for (int id : block_tensors_[static_cast<std::size_t>(b)]) {
      const auto& spec = table[static_cast<std::size_t>(id)];
      ts.push_back({{"name", spec.name}, {"shape", spec.shape}, {"offset", tensor_offset_[static_cast<std::size_t>(id)]}});
    }
    jb["tensors"] = std::move(ts);
    blocks.push_back(std::move(jb));
  }
  m["blocks"] = std::move(blocks);
  write_file_atomic(opt_.work_dir / kManifest, m.dump(1) + "\n");
}

void DiskStore::load_manifest() {
  const fs::path path = opt_.work_dir / kManifest;
  check(has_working_copy(opt_.work_dir), path.string(), ": no working copy of the disk tier here (missing manifest)");
  Json m = read_json_file(path);
  auto field = [&](const Json& j, const char* key) -> const Json& {
    check(j.is_object() && j.contains(key), path.string(), ": missing field '", key, "'");
    return j[key];
  };
  check(field(m, "format") == kFormat, path.string(), ": field 'format' is not ", kFormat);
  check(field(m, "model_type") == arch_.config().model_type, path.string(), ": the working copy holds a ",
        field(m, "model_type").dump(), " model, not ", arch_.config().model_type);
  check(field(m, "dtype") == "F32", path.string(), ": field 'dtype' must be F32");
  const Json& blocks = field(m, "blocks");
  check(blocks.is_array() && blocks.size() == static_cast<std::size_t>(arch_.num_blocks()), path.string(),
        ": field 'blocks' must list ", arch_.num_blocks(), " blocks");
  const auto& table = arch_.tensors();
  for (int b = 0; b < arch_.num_blocks(); ++b) {
    const Json& jb = blocks[static_cast<std::size_t>(b)];
    check(field(jb, "numel") == block_numel_[static_cast<std::size_t>(b)], path.string(), ": block ", b,
          " has another size than this model's");
    const Json& ts = field(jb, "tensors");
    const auto& ids = block_tensors_[static_cast<std::size_t>(b)];
    check(ts.is_array() && ts.size() == ids.size(), path.string(), ": block ", b, " lists other tensors than this model's");
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const auto& spec = table[static_cast<std::size_t>(ids[i])];
      check(field(ts[i], "name") == spec.name && field(ts[i], "shape") == Json(spec.shape), path.string(), ": block ", b,
            " tensor ", i, " is not '", spec.name, "' with this model's shape");
    }
  }
}

int64_t DiskStore::read_header(int block) const {
  const fs::path path = block_path(block);
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  check(f.fd >= 0, path.string(), ": cannot open block file: ", errno_text(errno));
  struct stat st {};
  check(::fstat(f.fd, &st) == 0, path.string(), ": stat failed: ", errno_text(errno));
  const int64_t n = block_numel_[static_cast<std::size_t>(block)];
  check(static_cast<uint64_t>(st.st_size) == file_bytes(n), path.string(), ": block file has ", st.st_size,
        " bytes, expected ", file_bytes(n), " (truncated or corrupt)");
  BlockHeader h{};
  pread_all(f.fd, &h, sizeof h, 0, path);
  check(std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 && h.block == block && h.numel == n, path.string(),
        ": not block ", block, " of this model (bad header)");
  check(h.updates >= 0, path.string(), ": bad update count ", h.updates);
  return h.updates;
}

// ---- block I/O

int DiskStore::inject(DiskIoPoint p, int block) const { return opt_.fault ? opt_.fault(p, block) : 0; }

void DiskStore::read_block(Stage& s) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path path = block_path(s.block);
  const int64_t n = block_numel_[static_cast<std::size_t>(s.block)];
  const uint64_t bytes = file_bytes(n);
  float* buf = s.buf.ensure(bytes / sizeof(float));
  if (int e = inject(DiskIoPoint::Read, s.block)) fail(path.string(), ": read failed: ", errno_text(e));
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | (opt_.direct_io ? O_DIRECT : 0))};
  if (f.fd < 0 && errno == EINVAL && opt_.direct_io) f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // tmpfs: no O_DIRECT
  check(f.fd >= 0, path.string(), ": cannot open block file: ", errno_text(errno));
  pread_all(f.fd, buf, bytes, 0, path);
  ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
  BlockHeader h{};
  std::memcpy(&h, buf, sizeof h);
  check(std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 && h.block == s.block && h.numel == n, path.string(),
        ": not block ", s.block, " of this model (bad header)");
  check(h.updates == s.updates, path.string(), ": block holds ", h.updates, " updates, the store expected ", s.updates,
        " (was the working copy changed by another process?)");
  std::lock_guard lk(mu_);
  io_totals_.read += bytes;
  io_totals_.read_s += seconds_since(t0);
}

void DiskStore::write_block(Stage& s, int64_t updates) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path path = block_path(s.block);
  fs::path tmp = path;
  tmp += ".tmp";
  const int64_t n = block_numel_[static_cast<std::size_t>(s.block)];
  const uint64_t bytes = file_bytes(n);
  float* buf = s.buf.data();
  BlockHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.block = s.block;
  h.numel = n;
  h.updates = updates;
  std::memset(buf, 0, kPage);
  std::memcpy(buf, &h, sizeof h);

  // A simulated crash (the hook throws) leaves the temp file behind, as a kill would.
  auto failed = [&](const char* what, int e) {
    ::unlink(tmp.c_str());
    fail(tmp.string(), ": ", what, " failed: ", errno_text(e), " (the block's previous state in ", path.filename().string(),
         " is intact)");
  };
  if (int e = inject(DiskIoPoint::WriteTmp, s.block)) failed("write", e);
  {
    Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (opt_.direct_io ? O_DIRECT : 0), 0644)};
    if (f.fd < 0 && errno == EINVAL && opt_.direct_io)  // file systems without O_DIRECT (tmpfs)
      f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f.fd < 0) failed("create", errno);
    const auto* p = reinterpret_cast<const uint8_t*>(buf);
    uint64_t left = bytes, off = 0;
    while (left > 0) {
      const ssize_t w = ::pwrite(f.fd, p + off, left, static_cast<off_t>(off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) failed("write", w < 0 ? errno : ENOSPC);
      off += static_cast<uint64_t>(w);
      left -= static_cast<uint64_t>(w);
    }
    if (::fdatasync(f.fd) != 0) failed("fdatasync", errno);
    // Clean pages after fdatasync: dropping them keeps the page cache out of the figures.
    ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
    const int fd = std::exchange(f.fd, -1);
    if (::close(fd) != 0) failed("close", errno);
  }
  if (int e = inject(DiskIoPoint::BeforeRename, s.block)) failed("rename", e);
  if (::rename(tmp.c_str(), path.c_str()) != 0) failed("rename", errno);
  std::lock_guard lk(mu_);
  io_totals_.written += bytes;
  io_totals_.write_s += seconds_since(t0);
}

// ---- staging (mu_ held unless noted)

DiskStore::Stage* DiskStore::take_free_stage(bool may_evict) {
  for (auto& s : stages_)
    if (s->state == StageState::Free) return s.get();
  if (may_evict)
    for (auto& s : stages_)
      if (s->state == StageState::Ready) {
        s->state = StageState::Free;
        s->error = nullptr;
        return s.get();
      }
  return nullptr;
}

void DiskStore::schedule_read(int block) {
  for (auto& s : stages_)
    if (s->block == block && s->state != StageState::Free && s->state != StageState::Writing) return;
  Stage* s = take_free_stage(false);
  if (!s) return;
  s->block = block;
  s->updates = updates_[static_cast<std::size_t>(block)];
  s->state = StageState::Reading;
  s->error = nullptr;
  queue_.push_back({false, s});
  cv_.notify_all();
}

DiskStore::Stage& DiskStore::stage_for_acquire(std::unique_lock<std::mutex>& lk, int block) {
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    rethrow_io_error();
    Stage* found = nullptr;
    for (auto& s : stages_)
      if (s->block == block && (s->state == StageState::Reading || s->state == StageState::Ready)) found = s.get();
    if (found && found->state == StageState::Ready) {
      if (found->error) {
        auto e = std::exchange(found->error, nullptr);
        found->state = StageState::Free;
        std::rethrow_exception(e);
      }
      found->state = StageState::InUse;
      counters_.io_wait_seconds += seconds_since(t0);
      return *found;
    }
    if (!found) {
      if (Stage* s = take_free_stage(true)) {
        s->block = block;
        s->updates = updates_[static_cast<std::size_t>(block)];
        s->error = nullptr;
        s->state = StageState::Reading;
        if (opt_.overlap) {
          queue_.push_back({false, s});
          cv_.notify_all();
        } else {
          lk.unlock();
          try {
            read_block(*s);
          } catch (...) {
            lk.lock();
            s->state = StageState::Free;
            throw;
          }
          lk.lock();
          s->state = StageState::Ready;
        }
        continue;
      }
    }
    cv_.wait(lk);
  }
}

void DiskStore::retire(std::unique_lock<std::mutex>& lk, Stage& s) {
  slot_of_[static_cast<std::size_t>(s.block)] = nullptr;
  held_[static_cast<std::size_t>(s.block)] = nullptr;
  s.holds_pointers = false;
  const bool big = s.buf.capacity() > kHeaderFloats + payload_bytes(max_layer_numel_) / sizeof(float);
  if (!s.dirty) {
    if (big) s.buf.release();
    s.state = StageState::Free;
    cv_.notify_all();
    return;
  }
  s.dirty = false;
  s.updates = updates_[static_cast<std::size_t>(s.block)];
  s.state = StageState::Writing;
  if (opt_.overlap) {
    queue_.push_back({true, &s});
    cv_.notify_all();
    return;
  }
  lk.unlock();
  try {
    write_block(s, s.updates);
  } catch (...) {
    lk.lock();
    io_error_ = std::current_exception();
    s.state = StageState::Free;
    throw;
  }
  lk.lock();
  if (big) s.buf.release();
  s.state = StageState::Free;
}

void DiskStore::io_loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;
    Task t = queue_.front();
    queue_.pop_front();
    ++busy_;
    lk.unlock();
    std::exception_ptr err;
    try {
      if (t.write) write_block(*t.stage, t.stage->updates);
      else read_block(*t.stage);
    } catch (...) {
      err = std::current_exception();
    }
    lk.lock();
    --busy_;
    if (t.write) {
      if (err && !io_error_) io_error_ = err;
      if (t.stage->buf.capacity() > kHeaderFloats + payload_bytes(max_layer_numel_) / sizeof(float))
        t.stage->buf.release();
      t.stage->state = StageState::Free;
    } else {
      t.stage->error = err;
      t.stage->state = StageState::Ready;
    }
    cv_.notify_all();
  }
}

void DiskStore::drain(std::unique_lock<std::mutex>& lk) const {
  cv_.wait(lk, [&] { return queue_.empty() && busy_ == 0; });
}

void DiskStore::rethrow_io_error() {
  // A lost write-back breaks the run: every later call reports it.
  if (io_error_) std::rethrow_exception(io_error_);
}

void DiskStore::fold_counters() {
  std::lock_guard lk(mu_);
  counters_.param_bytes_read += io_totals_.read - io_folded_.read;
  counters_.param_bytes_written += io_totals_.written - io_folded_.written;
  counters_.io_read_seconds += io_totals_.read_s - io_folded_.read_s;
  counters_.io_write_seconds += io_totals_.write_s - io_folded_.write_s;
  io_folded_ = io_totals_;
}

DiskStore::Slot& DiskStore::slot_for(int block) {
  Slot* s = nullptr;
  if (block == 0 && pin_block0_) {
    s = &pinned_;
  } else {
    s = &ring_[static_cast<std::size_t>(ring_next_)];
    ring_next_ = (ring_next_ + 1) % opt_.resident_blocks;
  }
  const int64_t n = block_numel_[static_cast<std::size_t>(block)];
  blocks::ensure(s->plus, n);
  blocks::ensure(s->minus, n);
  slot_of_[static_cast<std::size_t>(block)] = s;
  return *s;
}

// ---- the ParamStore interface

void DiskStore::prefetch(int block) {
  if (!opt_.overlap) return;
  std::lock_guard lk(mu_);
  for (int k = 0; k < opt_.resident_blocks && block + k < arch_.num_blocks(); ++k) schedule_read(block + k);
}

void DiskStore::acquire(int block, const BlockWork& work) {
  fold_counters();
  const auto bi = static_cast<std::size_t>(block);
  check(block >= 0 && block < arch_.num_blocks() && !held_[bi], "disk tier: block ", block,
        " acquired twice or out of range");
  Stage* st = nullptr;
  {
    std::unique_lock lk(mu_);
    st = &stage_for_acquire(lk, block);
  }
  held_[bi] = st;
  float* weights = st->buf.data() + kHeaderFloats;
  Slot* slot = work.perturb ? &slot_for(block) : nullptr;
  for (int id : block_tensors_[bi]) {
    const int64_t off = tensor_offset_[static_cast<std::size_t>(id)];
    float* w = weights + off;
    float* plus = work.perturb ? slot->plus.data() + off : nullptr;
    float* minus = work.perturb && !work.one_sided ? slot->minus.data() + off : nullptr;
    apply_fp32_work(id, work, w, plus, minus);
  }
  if (work.update) {
    ++updates_[bi];
    st->dirty = true;
  }
  st->holds_pointers = !work.perturb || work.one_sided;
  std::unique_lock lk(mu_);
  // The working copies are all the forward needs: write back at once and free the buffer.
  if (!st->holds_pointers) {
    Slot* keep = slot_of_[bi];
    retire(lk, *st);
    slot_of_[bi] = keep;
    held_[bi] = nullptr;
  }
  if (block == arch_.num_blocks() - 1 && opt_.overlap) schedule_read(0);  // the next step starts there
}

void DiskStore::release(int block) {
  const auto bi = static_cast<std::size_t>(block);
  Slot* slot = slot_of_[bi];
  {
    std::unique_lock lk(mu_);
    if (Stage* st = held_[bi]) retire(lk, *st);
  }
  slot_of_[bi] = nullptr;
  // Working copies of a big block (embeddings, untied head) are not kept between steps.
  if (slot && slot != &pinned_ && block_numel_[bi] > max_layer_numel_) {
    slot->plus = AlignedBuffer<float>();
    slot->minus = AlignedBuffer<float>();
  }
  for (int id : block_tensors_[bi]) plus_[static_cast<std::size_t>(id)] = minus_[static_cast<std::size_t>(id)] = nullptr;
  fold_counters();
}

void DiskStore::sync() {
  {
    std::unique_lock lk(mu_);
    drain(lk);
    rethrow_io_error();
  }
  Fd d{::open(opt_.work_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  check(d.fd >= 0 && ::fsync(d.fd) == 0, opt_.work_dir.string(), ": fsync of the work directory failed: ",
        errno_text(errno));
  write_manifest();
  fold_counters();
}

void DiskStore::read_tensor(int id, float* out) const {
  {
    std::unique_lock lk(mu_);
    drain(lk);
  }
  const auto& spec = arch_.tensors()[static_cast<std::size_t>(id)];
  const fs::path path = block_path(spec.block);
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  check(f.fd >= 0, path.string(), ": cannot open block file: ", errno_text(errno));
  pread_all(f.fd, out, static_cast<uint64_t>(spec.numel()) * sizeof(float),
            kPage + static_cast<uint64_t>(tensor_offset_[static_cast<std::size_t>(id)]) * sizeof(float), path);
  ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
}

void DiskStore::catch_up(kernels::ZDist dist, float weight_decay, const std::vector<UpdateRecord>& records) {
  sync();
  const auto target = static_cast<int64_t>(records.size());
  for (int b = 0; b < arch_.num_blocks(); ++b) {
    check(updates_[static_cast<std::size_t>(b)] <= target, block_path(b).string(), ": block holds ",
          updates_[static_cast<std::size_t>(b)], " updates, more than the ", target, " of the update log");
    while (updates_[static_cast<std::size_t>(b)] < target) {
      const auto& r = records[static_cast<std::size_t>(updates_[static_cast<std::size_t>(b)])];
      BlockWork work;
      work.dist = dist;
      work.update = PendingUpdate{r.seed, r.lr, r.grad};
      work.weight_decay = weight_decay;
      acquire(b, work);
      release(b);
    }
  }
  sync();
}

}  // namespace zotune
