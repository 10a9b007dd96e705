#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <unordered_set>

#include "base/error.h"
#include "base/fs.h"
#include "io/json_file.h"

namespace zotune {
namespace fs = std::filesystem;

// ---------------------------------------------------------------- MappedFile

MappedFile::MappedFile(const fs::path& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open ", path.string(), ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail("cannot stat ", path.string(), ": ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("cannot map ", path.string(), ": not a regular file");
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ > 0) {  // mmap of length 0 is EINVAL; an empty file maps to nothing
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      fail("cannot map ", path.string(), ": ", std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps its own reference to the file
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

// ----------------------------------------------------------- header parsing

namespace {

constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;
constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

// Hostile values can be huge; error messages show only their start.
std::string short_dump(const Json& j) { return json_excerpt(j, 77); }

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Parses the header text; a tensor name that appears twice at the top level
// is rejected instead of silently keeping the last one.
Json parse_header(const char* text, std::size_t n, const std::string& file) {
  std::set<std::string> seen;
  std::string dup;
  auto cb = [&](int depth, Json::parse_event_t ev, Json& parsed) {
    if (ev == Json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      if (!seen.insert(parsed.get<std::string>()).second && dup.empty()) dup = parsed.get<std::string>();
    }
    return true;
  };
  // nlohmann stops at a NUL as if the input ended; strict JSON has none.
  if (const void* nul = std::memchr(text, '\0', n))
    fail(file, ": header is not valid JSON: NUL byte at header offset ", static_cast<const char*>(nul) - text);
  if (const std::size_t at = json_depth_exceeded(std::string_view(text, n)); at != std::string_view::npos)
    fail(file, ": header is not valid JSON: nested deeper than ", kMaxJsonDepth, " levels at header offset ", at);
  Json j;
  try {
    j = Json::parse(text, text + n, cb);
  } catch (const Json::exception& e) {
    fail(file, ": header is not valid JSON: ", text_excerpt(e.what(), 160));
  }
  if (!j.is_object()) fail(file, ": header is not a JSON object (", short_dump(j), ")");
  if (!dup.empty()) fail(file, ": tensor '", dup, "' appears twice in the header");
  return j;
}

std::map<std::string, std::string> parse_metadata(const Json& m, const std::string& file) {
  if (!m.is_object()) fail(file, ": __metadata__ is not an object of strings (", short_dump(m), ")");
  std::map<std::string, std::string> out;
  for (auto& [k, v] : m.items()) {
    if (!v.is_string())
      fail(file, ": __metadata__ field '", k, "' is not a string (", short_dump(v), ")");
    out.emplace(k, v.get<std::string>());
  }
  return out;
}

TensorInfo parse_entry(const std::string& name, const Json& e, const std::string& file) {
  auto bad = [&](auto&&... parts) -> void { fail(file, ": tensor '", name, "': ", parts...); };
  if (!e.is_object()) bad("entry is not an object (", short_dump(e), ")");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) bad("missing field '", key, "'");

  TensorInfo t;
  t.name = name;
  const Json& dt = e["dtype"];
  if (!dt.is_string()) bad("dtype is not a string (", short_dump(dt), ")");
  auto d = dtype_from_name(dt.get<std::string>());
  if (!d) bad("unsupported dtype '", dt.get<std::string>(), "'");
  t.dtype = *d;

  const Json& sh = e["shape"];
  if (!sh.is_array()) bad("shape is not an array (", short_dump(sh), ")");
  uint64_t count = 1;
  bool overflow = false;
  for (const Json& dim : sh) {
    // is_number_unsigned rejects negatives, floats (even 2.0) and > 2^64.
    if (!dim.is_number_unsigned()) bad("shape ", short_dump(sh), " has a dimension that is not a non-negative integer");
    uint64_t v = dim.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) bad("shape ", short_dump(sh), " overflows");
    // Checked at every step: consumers multiply dims left to right in int64.
    overflow |= __builtin_mul_overflow(count, v, &count) ||
                count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    t.shape.push_back(static_cast<int64_t>(v));
  }
  uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(count, uint64_t{dtype_size(t.dtype)}, &nbytes);
  // A later 0 dimension would hide an earlier overflow, hence the flag.
  if (overflow) bad("shape ", shape_str(t.shape), " overflows");

  const Json& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    bad("data_offsets is not two non-negative integers (", short_dump(off), ")");
  t.begin = off[0].get<uint64_t>();
  t.end = off[1].get<uint64_t>();
  if (t.begin > t.end) bad("data_offsets [", t.begin, ", ", t.end, "] has begin > end");
  if (t.end - t.begin != nbytes)
    bad("data_offsets [", t.begin, ", ", t.end, "] hold ", t.end - t.begin, " bytes but ", dtype_name(t.dtype),
        " ", shape_str(t.shape), " needs ", nbytes);
  return t;
}

}  // namespace

// ---------------------------------------------------------- SafetensorsFile

SafetensorsFile::SafetensorsFile(const fs::path& path) : file_(std::make_shared<MappedFile>(path)) {
  const std::string name = path.string();
  const uint64_t size = file_->size();
  if (size < 8) fail(name, ": file is ", size, " bytes, shorter than the 8-byte header length");
  const uint64_t header_len = read_u64_le(file_->data());
  if (header_len > kMaxHeaderBytes) fail(name, ": header length ", header_len, " exceeds the 100 MB limit");
  if (header_len > size - 8)
    fail(name, ": header length ", header_len, " runs past the end of the file (", size, " bytes)");
  data_offset_ = 8 + header_len;
  const uint64_t data_size = size - data_offset_;

  Json header = parse_header(reinterpret_cast<const char*>(file_->data() + 8), header_len, name);
  for (auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      metadata_ = parse_metadata(value, name);
      continue;
    }
    TensorInfo t = parse_entry(key, value, name);
    if (t.end > data_size)
      fail(name, ": tensor '", key, "': data_offsets [", t.begin, ", ", t.end, "] run past the data region (",
           data_size, " bytes)");
    tensors_.push_back(std::move(t));
  }

  // File order makes streaming reads sequential and the overlap check linear.
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.name < b.name;
  });
  const TensorInfo* last = nullptr;  // the non-empty range reaching furthest so far
  for (const TensorInfo& t : tensors_) {
    if (t.begin == t.end) continue;  // zero-size tensors occupy no bytes
    if (last && t.begin < last->end)
      fail(name, ": tensors '", last->name, "' [", last->begin, ", ", last->end, ") and '", t.name, "' [", t.begin,
           ", ", t.end, ") overlap");
    if (!last || t.end > last->end) last = &t;
  }
  for (std::size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

TensorView SafetensorsFile::view(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) fail(path().string(), ": missing tensor '", name, "'");
  return view(*t);
}

TensorView SafetensorsFile::view(const TensorInfo& t) const {
  // Guards against a TensorInfo taken from another file.
  if (t.begin > t.end || t.end > file_->size() - data_offset_)
    fail(path().string(), ": tensor '", t.name, "' is not inside this file");
  return TensorView{t.dtype, t.shape, file_->data() + data_offset_ + t.begin};
}

// --------------------------------------------------------------- Checkpoint

namespace {

bool safe_shard_name(const std::string& s) {
  return !s.empty() && s.find('/') == std::string::npos && s.find('\\') == std::string::npos &&
         s.find("..") == std::string::npos && s.find('\0') == std::string::npos;
}

}  // namespace

Checkpoint::Checkpoint(const fs::path& dir) : dir_(dir) {
  std::error_code ec;
  const fs::path index_path = dir / kIndexName;
  auto add_file = [&](const fs::path& p) {
    files_.push_back(std::make_unique<SafetensorsFile>(p));
    const std::size_t fi = files_.size() - 1;
    for (const TensorInfo& t : files_[fi]->tensors()) {
      auto [it, fresh] = where_.emplace(t.name, fi);
      if (!fresh)
        fail(dir.string(), ": tensor '", t.name, "' is in both ", files_[it->second]->path().filename().string(),
             " and ", p.filename().string());
    }
    return fi;
  };

  if (fs::is_regular_file(index_path, ec)) {
    const std::string iname = index_path.string();
    Json index = read_json_file(index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail(iname, ": missing object 'weight_map'");
    std::map<std::string, std::size_t> shard_files;  // shard name -> files_ index
    for (auto& [tensor, shard] : index["weight_map"].items()) {
      if (!shard.is_string()) fail(iname, ": tensor '", tensor, "': shard is not a string (", short_dump(shard), ")");
      const std::string sname = shard.get<std::string>();
      if (!safe_shard_name(sname))
        fail(iname, ": tensor '", tensor, "': shard name '", sname, "' must be a plain file name in ", dir.string());
      auto it = shard_files.find(sname);
      if (it == shard_files.end()) it = shard_files.emplace(sname, add_file(dir / sname)).first;
      if (!files_[it->second]->find(tensor))
        fail(iname, ": tensor '", tensor, "' is not in its shard ", sname);
    }
    return;
  }

  const fs::path single = dir / kSingleName;
  if (fs::is_regular_file(single, ec)) {
    add_file(single);
    return;
  }
  std::vector<fs::path> found;
  if (fs::is_directory(dir, ec)) {
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.path().extension() == ".safetensors" && entry.is_regular_file(ec)) found.push_back(entry.path());
  }
  if (found.size() != 1) {
    if (found.empty()) fail("no safetensors checkpoint in ", dir.string());
    fail("no safetensors checkpoint in ", dir.string(), ": ", found.size(), " .safetensors files but no ",
         kIndexName);
  }
  add_file(found[0]);
}

bool Checkpoint::has(const std::string& name) const { return where_.count(name) != 0; }

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail(dir_.string(), ": missing tensor '", name, "'");
  return *files_[it->second]->find(name);
}

TensorView Checkpoint::get(const std::string& name) const {
  const TensorInfo& t = info(name);
  return files_[where_.at(name)]->view(t);
}

const fs::path& Checkpoint::file_of(const std::string& name) const {
  info(name);  // throws the missing-tensor error
  return files_[where_.at(name)]->path();
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [n, _] : where_) out.push_back(n);
  return out;
}

// ------------------------------------------------------------------ writing

namespace {

void check_unique_names(const std::vector<NamedTensor>& tensors, const std::string& where) {
  std::unordered_set<std::string> seen;
  for (const NamedTensor& t : tensors) {
    if (t.name == kMetadataKey) fail(where, ": '", kMetadataKey, "' is reserved and cannot name a tensor");
    if (!seen.insert(t.name).second) fail(where, ": tensor '", t.name, "' is given twice");
  }
}

uint64_t tensor_bytes(const NamedTensor& t, const std::string& where) {
  for (int64_t d : t.view.shape)
    if (d < 0) fail(where, ": tensor '", t.name, "' has negative shape ", shape_str(t.view.shape));
  const uint64_t n = t.view.nbytes();
  if (n > 0 && !t.view.data && !t.fill) fail(where, ": tensor '", t.name, "' has no data");
  return n;
}

}  // namespace

void write_safetensors(const fs::path& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string name = path.string();
  check_unique_names(tensors, name);
  // ordered_json keeps tensors in data order, metadata first, as HF writes it.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const NamedTensor& t : tensors) {
    const uint64_t n = tensor_bytes(t, name);
    header[t.name] = {{"dtype", std::string(dtype_name(t.view.dtype))},
                      {"shape", t.view.shape},
                      {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data region 8-byte aligned
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));

  // Pieces of filled tensors: 4 MB at a time.
  constexpr int64_t kPieceBytes = int64_t{4} << 20;
  std::vector<uint8_t> piece;
  write_file_atomic(path, [&](const ByteSink& sink) {
    sink(len, 8);
    sink(text.data(), text.size());
    for (const NamedTensor& t : tensors) {
      if (t.view.nbytes() == 0) continue;
      if (t.view.data) {
        sink(t.view.data, t.view.nbytes());
        continue;
      }
      const auto esize = static_cast<int64_t>(dtype_size(t.view.dtype));
      const int64_t n = t.view.numel(), step = std::max<int64_t>(1, kPieceBytes / esize);
      piece.resize(static_cast<std::size_t>(std::min(n, step) * esize));
      for (int64_t b = 0; b < n; b += step) {
        const int64_t m = std::min(step, n - b);
        t.fill(b, m, piece.data());
        sink(piece.data(), static_cast<std::size_t>(m * esize));
      }
    }
  });
}

std::vector<std::string> write_checkpoint(const fs::path& dir, const std::vector<NamedTensor>& tensors,
                                          uint64_t max_shard_bytes) {
  const std::string dname = dir.string();
  check(max_shard_bytes > 0, dname, ": max_shard_bytes must be positive");
  check_unique_names(tensors, dname);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create directory ", dname, ": ", ec.message());

  // Same split as huggingface_hub: walk in order, start a new shard when the
  // next tensor would tip the current one over; an oversized tensor gets a
  // shard of its own (appended at once, so it may precede the open shard).
  std::vector<std::vector<std::size_t>> shards;
  std::vector<std::size_t> current;
  uint64_t current_bytes = 0, total = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t n = tensor_bytes(tensors[i], dname);
    total += n;
    if (n > max_shard_bytes) {
      shards.push_back({i});
      continue;
    }
    if (current_bytes + n > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += n;
  }
  if (!current.empty()) shards.push_back(std::move(current));

  if (shards.size() <= 1) {
    write_safetensors(dir / kSingleName, tensors);
    return {kSingleName};
  }
  std::vector<std::string> written;
  Json weight_map = Json::object();
  for (std::size_t s = 0; s < shards.size(); ++s) {
    char fname[64];
    std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    std::vector<NamedTensor> part;
    for (std::size_t i : shards[s]) {
      part.push_back(tensors[i]);
      weight_map[tensors[i].name] = fname;
    }
    write_safetensors(dir / fname, part);
    written.emplace_back(fname);
  }
  // Written last, so a reader never sees an index naming a missing shard.
  Json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file_atomic(dir / kIndexName, index.dump(2, ' ', /*ensure_ascii=*/true) + "\n");
  written.emplace_back(kIndexName);
  return written;
}

}  // namespace zotune
