#include "model/model.h"

#include <algorithm>

#include "base/error.h"
#include "base/fs.h"
#include "base/philox.h"
#include "kernels/finite.h"
#include "kernels/kernels.h"

namespace zotune {
namespace fs = std::filesystem;

LoadedModel load_model(const fs::path& dir) {
  LoadedModel m;
  if (!fs::is_directory(dir)) fail(dir.string(), ": not a model directory");
  m.arch = load_architecture(dir);
  m.ckpt = std::make_unique<Checkpoint>(dir);
  m.weights = std::make_unique<ModelWeights>(*m.arch, *m.ckpt);
  return m;
}

namespace {

const char* torch_dtype_name(DType d) {
  switch (d) {
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    default: return "float32";
  }
}

void fill_init(const TensorSpec& spec, uint32_t tensor_id, uint64_t seed, float stddev, float* out) {
  const int64_t n = spec.numel();
  if (spec.role == TensorRole::Bias) {
    std::fill(out, out + n, 0.0f);
    return;
  }
  if (spec.role == TensorRole::Norm) {
    std::fill(out, out + n, 1.0f);
    return;
  }
  const std::array<uint32_t, 2> key{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < (n + 3) / 4; ++blk) {
    const auto r = Philox4x32::block({static_cast<uint32_t>(blk), static_cast<uint32_t>(blk >> 32), tensor_id,
                                      0x1A17u /* init stream */},
                                     key);
    const auto z = normals4(r);
    for (int j = 0; j < 4 && blk * 4 + j < n; ++j) out[blk * 4 + j] = stddev * z[static_cast<std::size_t>(j)];
  }
}

}  // namespace

void save_checkpoint(const Architecture& arch, const std::vector<const float*>& values, DType dtype,
                     const fs::path& out) {
  check(values.size() == arch.tensors().size(), "save_checkpoint: ", values.size(), " tensors for a table of ",
        arch.tensors().size());
  save_checkpoint(
      arch,
      [&](int id, int64_t first, int64_t count, float* dst) {
        const float* src = values[static_cast<std::size_t>(id)] + first;
        std::copy(src, src + count, dst);
      },
      dtype, out);
}

std::vector<std::string> save_checkpoint(const Architecture& arch, const TensorReader& read, DType dtype,
                                         const fs::path& out) {
  check(is_float_storage(dtype), "cannot save weights as ", dtype_name(dtype));
  const auto& table = arch.tensors();
  fs::create_directories(out);
  std::vector<NamedTensor> named;
  named.reserve(table.size());
  std::vector<float> f32;  // one piece in fp32 (16-bit outputs)
  for (std::size_t i = 0; i < table.size(); ++i) {
    const auto& spec = table[i];
    NamedTensor t{spec.name, TensorView{dtype, spec.shape, nullptr}, {}};
    const int id = static_cast<int>(i);
    t.fill = [&, id](int64_t first, int64_t count, void* dst) {
      if (dtype == DType::F32) {
        read(id, first, count, static_cast<float*>(dst));
        return;
      }
      f32.resize(static_cast<std::size_t>(count));
      read(id, first, count, f32.data());
      if (dtype == DType::BF16) kernels::f32_to_bf16(f32.data(), static_cast<uint16_t*>(dst), count);
      else kernels::f32_to_f16(f32.data(), static_cast<uint16_t*>(dst), count);
    };
    named.push_back(std::move(t));
  }
  Json config = arch.config().json;
  config["torch_dtype"] = torch_dtype_name(dtype);
  std::vector<std::string> written = write_checkpoint(out, named);
  write_file_atomic(out / "config.json", config.dump(2) + "\n");
  return written;
}

TensorReader checkpoint_reader(const Architecture& arch, const Checkpoint& ckpt) {
  std::vector<TensorView> views;
  for (const auto& spec : arch.tensors()) views.push_back(checked_view(arch, ckpt, spec));
  return [views = std::move(views)](int id, int64_t first, int64_t count, float* out) {
    const TensorView& v = views[static_cast<std::size_t>(id)];
    const auto* base = static_cast<const char*>(v.data) + static_cast<std::size_t>(first) * dtype_size(v.dtype);
    upcast_to_f32(TensorView{v.dtype, {count}, base}, out);
  };
}

void check_weights_finite(const Architecture& arch, const TensorReader& read, const std::string& what) {
  constexpr int64_t kPiece = int64_t{1} << 20;
  std::vector<float> buf;
  const auto& table = arch.tensors();
  for (std::size_t i = 0; i < table.size(); ++i) {
    const int64_t n = table[i].numel();
    for (int64_t first = 0; first < n; first += kPiece) {
      const int64_t count = std::min(kPiece, n - first);
      buf.resize(static_cast<std::size_t>(count));
      read(static_cast<int>(i), first, count, buf.data());
      const int64_t at = kernels::first_nonfinite_f32(buf.data(), count);
      if (at >= 0)
        fail(what, ": tensor '", table[i].name, "' holds a non-finite value (", buf[static_cast<std::size_t>(at)],
             " at flat index ", first + at, ")");
    }
  }
}

void replace_checkpoint(const Architecture& arch, const TensorReader& read, DType dtype, const fs::path& out) {
  const std::vector<std::string> written = save_checkpoint(arch, read, dtype, out);
  auto is_weight_file = [](const std::string& n) {
    return n.rfind("model", 0) == 0 && (n.ends_with(".safetensors") || n.ends_with(".safetensors.index.json"));
  };
  std::vector<fs::path> stale;
  for (auto& e : fs::directory_iterator(out)) {
    const std::string n = e.path().filename().string();
    if (is_weight_file(n) && std::find(written.begin(), written.end(), n) == written.end()) stale.push_back(e.path());
  }
  // The index first: while it exists it names the shards a reader opens.
  std::stable_partition(stale.begin(), stale.end(), [](const fs::path& p) { return p.string().ends_with(".json"); });
  for (const auto& p : stale) fs::remove(p);
}

void init_checkpoint(Json config, DType dtype, uint64_t seed, const fs::path& out) {
  for (const char* f : {"config.json", "model.safetensors", "model.safetensors.index.json"})
    if (fs::exists(out / f)) fail(out.string(), ": already holds ", f, "; refusing to overwrite it");
  config["torch_dtype"] = torch_dtype_name(dtype);
  auto arch = make_architecture(config, "<preset config>");
  const float stddev = static_cast<float>(config.value("initializer_range", config.value("init_std", 0.02)));
  const auto& table = arch->tensors();
  std::vector<AlignedBuffer<float>> values(table.size());
  std::vector<const float*> ptrs(table.size());
  for (std::size_t i = 0; i < table.size(); ++i) {
    values[i].reset(static_cast<std::size_t>(table[i].numel()));
    fill_init(table[i], static_cast<uint32_t>(i), seed, stddev, values[i].data());
    ptrs[i] = values[i].data();
  }
  save_checkpoint(*arch, ptrs, dtype, out);
}

}  // namespace zotune
