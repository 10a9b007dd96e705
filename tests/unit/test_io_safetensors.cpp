// safetensors reading/writing: round trips, cross-checks against an
// independent Python (stdlib json/struct) writer and reader, sharded
// checkpoints, and one test per header validation rule.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fs.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace zotune {
namespace {
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/zotune_io_XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << p;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A raw safetensors file: length prefix, header text, `data_bytes` bytes of data.
std::string raw_file(const std::string& header, std::size_t data_bytes = 0) {
  return le64(header.size()) + header + std::string(data_bytes, '\x5a');
}

// Asserts `fn` throws zotune::Error whose message contains every fragment.
void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    ADD_FAILURE() << "expected zotune::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

void expect_open_error(const TempDir& dir, const std::string& bytes, std::initializer_list<std::string> fragments) {
  const fs::path p = dir / "bad.safetensors";
  write_bytes(p, bytes);
  std::vector<std::string> all(fragments);
  all.push_back(p.string());
  try {
    SafetensorsFile f(p);
    ADD_FAILURE() << "expected zotune::Error for header " << bytes.substr(8, 200);
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& f : all) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

// ---- independent decoders (expected values for the Python cross-check)

double half_to_double(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double v = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
  return sign ? -v : v;
}

double bf16_to_double(uint16_t b) {
  uint32_t bits = uint32_t{b} << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// A tensor with deterministic pseudo-random contents. Float patterns have
// their all-ones exponent broken so no NaN/Inf appears (JSON cannot carry them).
struct TestTensor {
  std::string name;
  DType dtype;
  Shape shape;
  std::vector<uint8_t> bytes;
  NamedTensor named() const { return {name, TensorView{dtype, shape, bytes.empty() ? nullptr : bytes.data()}}; }

  // Element i decoded as a double (ints exactly, floats exactly).
  double value(std::size_t i) const {
    const uint8_t* p = bytes.data() + i * dtype_size(dtype);
    auto load = [p](auto v) { std::memcpy(&v, p, sizeof v); return v; };
    switch (dtype) {
      case DType::F32: return load(float{});
      case DType::F64: return load(double{});
      case DType::F16: return half_to_double(load(uint16_t{}));
      case DType::BF16: return bf16_to_double(load(uint16_t{}));
      case DType::I8: return load(int8_t{});
      case DType::U8: return load(uint8_t{});
      case DType::I16: return load(int16_t{});
      case DType::I32: return load(int32_t{});
      case DType::I64: return static_cast<double>(load(int64_t{}));
      case DType::BOOL: return load(uint8_t{});
    }
    return 0;
  }
  int64_t int_value(std::size_t i) const {
    int64_t v = 0;
    if (dtype == DType::I64) std::memcpy(&v, bytes.data() + i * 8, 8);
    else v = static_cast<int64_t>(value(i));
    return v;
  }
};

TestTensor make_tensor(const std::string& name, DType dt, Shape shape, uint64_t seed) {
  TestTensor t{name, dt, shape, {}};
  const std::size_t n = static_cast<std::size_t>(numel(shape)), es = dtype_size(dt);
  t.bytes.resize(n * es);
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < n; ++i) {
    uint64_t r = rng();
    uint8_t* p = t.bytes.data() + i * es;
    switch (dt) {
      case DType::F16: if (((r >> 10) & 0x1f) == 0x1f) r ^= 0x4000; break;
      case DType::BF16: if (((r >> 7) & 0xff) == 0xff) r ^= 0x4000; break;
      case DType::F32: if (((r >> 23) & 0xff) == 0xff) r ^= 0x40000000; break;
      case DType::F64: if (((r >> 52) & 0x7ff) == 0x7ff) r ^= uint64_t{1} << 62; break;
      case DType::BOOL: r &= 1; break;
      default: break;
    }
    std::memcpy(p, &r, es);  // little-endian host: low bytes first
  }
  return t;
}

// Every dtype, plus scalars and zero-size tensors. The odd-sized ones come last
// so the F32 data stays aligned.
std::vector<TestTensor> all_dtype_tensors() {
  return {
      make_tensor("model.embed.weight", DType::F32, {5, 7}, 1),
      make_tensor("f64", DType::F64, {3}, 2),
      make_tensor("i64", DType::I64, {2, 2}, 3),
      make_tensor("i32", DType::I32, {9}, 4),
      make_tensor("scalar.f32", DType::F32, {}, 5),
      make_tensor("f16", DType::F16, {3, 3}, 6),
      make_tensor("bf16", DType::BF16, {11}, 7),
      make_tensor("i16", DType::I16, {4}, 8),
      make_tensor("empty.f32", DType::F32, {0}, 9),
      make_tensor("empty.2d", DType::BF16, {4, 0, 2}, 10),
      make_tensor("i8", DType::I8, {13}, 11),
      make_tensor("u8", DType::U8, {1, 5}, 12),
      make_tensor("bool", DType::BOOL, {6}, 13),
      make_tensor("empty.last", DType::I64, {0}, 14),
  };
}

std::vector<NamedTensor> named(const std::vector<TestTensor>& ts) {
  std::vector<NamedTensor> out;
  for (const TestTensor& t : ts) out.push_back(t.named());
  return out;
}

void expect_same(const TestTensor& want, const TensorView& got) {
  EXPECT_EQ(got.dtype, want.dtype) << want.name;
  EXPECT_EQ(got.shape, want.shape) << want.name;
  ASSERT_EQ(got.nbytes(), want.bytes.size()) << want.name;
  if (!want.bytes.empty()) {
    EXPECT_EQ(std::memcmp(got.data, want.bytes.data(), want.bytes.size()), 0) << want.name;
  }
}

// Runs a Python snippet with arguments; returns its stdout, or nullopt when
// there is no python3 (the caller skips).
std::optional<std::string> run_python(const TempDir& dir, const std::string& script, const std::string& args) {
  if (std::system("python3 -c pass >/dev/null 2>&1") != 0) return std::nullopt;
  const fs::path py = dir / "snippet.py", out = dir / "py.out", err = dir / "py.err";
  write_bytes(py, script);
  const std::string cmd = "python3 " + py.string() + " " + args + " >" + out.string() + " 2>" + err.string();
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd << "\n" << read_file(err);
  return read_file(out);
}

// ------------------------------------------------------------------ MappedFile

TEST(MappedFile, MapsBytesAndHandlesEmptyAndMissingFiles) {
  TempDir dir;
  write_bytes(dir / "a.bin", "hello");
  MappedFile m(dir / "a.bin");
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.data()), 5), "hello");
  EXPECT_EQ(m.path(), dir / "a.bin");

  write_bytes(dir / "empty.bin", "");
  MappedFile e(dir / "empty.bin");
  EXPECT_EQ(e.size(), 0u);
  EXPECT_EQ(e.data(), nullptr);

  expect_error([&] { MappedFile x(dir / "missing.bin"); }, {(dir / "missing.bin").string(), "No such file"});
  expect_error([&] { MappedFile x(dir.path()); }, {dir.path().string(), "not a regular file"});
}

// ------------------------------------------------------------------ round trips

TEST(Safetensors, RoundTripAllDtypesZeroSizeAndMetadata) {
  TempDir dir;
  const auto tensors = all_dtype_tensors();
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "h\u00e9llo \"quoted\""}};
  write_safetensors(dir / "x.safetensors", named(tensors), meta);

  SafetensorsFile f(dir / "x.safetensors");
  EXPECT_EQ(f.metadata(), meta);
  ASSERT_EQ(f.tensors().size(), tensors.size());
  uint64_t total = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].name);
    const TensorInfo* info = f.find(tensors[i].name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->begin, total);  // contiguous, in the given order
    total += tensors[i].bytes.size();
    EXPECT_EQ(info->end, total);
    expect_same(tensors[i], f.view(tensors[i].name));
    expect_same(tensors[i], f.view(*info));
  }
  // tensors() is in file order; with contiguous data that is the write order
  // except that zero-size tensors tie with their successor (sorted by name).
  for (std::size_t i = 1; i < f.tensors().size(); ++i) EXPECT_LE(f.tensors()[i - 1].begin, f.tensors()[i].begin);
  EXPECT_EQ(f.data_offset() % 8, 0u);
  EXPECT_EQ(fs::file_size(dir / "x.safetensors"), f.data_offset() + total);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.view("model.embed.weight").data) % 4, 0u);
  EXPECT_EQ(f.find("nope"), nullptr);
  expect_error([&] { f.view("nope"); }, {(dir / "x.safetensors").string(), "missing tensor 'nope'"});
}

TEST(Safetensors, EmptyFileListAndNoMetadata) {
  TempDir dir;
  write_safetensors(dir / "e.safetensors", {}, {});
  const std::string bytes = read_file(dir / "e.safetensors");
  EXPECT_EQ(bytes.substr(8), "{}      ");  // padded to 8 with spaces
  SafetensorsFile f(dir / "e.safetensors");
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_TRUE(f.metadata().empty());
}

TEST(Safetensors, HeaderLayoutMatchesReferenceWriter) {
  // The reference writer emits compact JSON, __metadata__ first, entries as
  // dtype/shape/data_offsets, padded with spaces.
  TempDir dir;
  const float v[2] = {1.0f, -2.0f};
  write_safetensors(dir / "h.safetensors", {{"w", TensorView{DType::F32, {2}, v}}});
  const std::string bytes = read_file(dir / "h.safetensors");
  const std::string want = R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string padded = want + std::string((8 - want.size() % 8) % 8, ' ');
  EXPECT_EQ(bytes.substr(0, 8), le64(padded.size()));
  EXPECT_EQ(bytes.substr(8, padded.size()), padded);
  EXPECT_EQ(bytes.substr(8 + padded.size()), std::string(reinterpret_cast<const char*>(v), 8));
}

TEST(Safetensors, WriterRejectsDuplicateAndReservedNames) {
  TempDir dir;
  const float v[1] = {1};
  const TensorView tv{DType::F32, {1}, v};
  const fs::path p = dir / "d.safetensors";
  expect_error([&] { write_safetensors(p, {{"a", tv}, {"b", tv}, {"a", tv}}); }, {p.string(), "'a'", "twice"});
  expect_error([&] { write_safetensors(p, {{"__metadata__", tv}}); }, {p.string(), "reserved"});
  expect_error([&] { write_checkpoint(dir / "ck", {{"a", tv}, {"a", tv}}); }, {(dir / "ck").string(), "'a'"});
  EXPECT_TRUE(fs::is_empty(dir.path()));  // nothing written, no temp file left
}

TEST(Safetensors, UnalignedF32IsExposedAsIs) {
  // A hostile but valid layout: U8[1] then F32[2] at data offset 1.
  TempDir dir;
  const float vals[2] = {3.5f, -0.25f};
  std::string data(1, '\x07');
  data.append(reinterpret_cast<const char*>(vals), 8);
  std::string header = R"({"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  write_bytes(dir / "u.safetensors", le64(header.size()) + header + data);
  SafetensorsFile f(dir / "u.safetensors");
  const TensorView v = f.view("f");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % 4, 1u);
  float got[2];
  std::memcpy(got, v.data, 8);  // what an alignment-needing consumer does
  EXPECT_EQ(got[0], 3.5f);
  EXPECT_EQ(got[1], -0.25f);
}

// ---------------------------------------------------- independent Python side

// Writes a file with nothing but json/struct: header keys and data in
// different orders, explicit padding, metadata.
const char* kPythonWriter = R"PY(
import json, struct, sys
def f32(i): return (i - 7) * 0.375
def f16(i): return (i - 3) * 0.125
def bf16(i): return (i - 2) * 1.5
specs = [
  ("emb.f32", "F32", [3, 5], "f", [f32(i) for i in range(15)]),
  ("h.f16", "F16", [7], "e", [f16(i) for i in range(7)]),
  ("b.bf16", "BF16", [2, 3], "H", [struct.unpack("<I", struct.pack("<f", bf16(i)))[0] >> 16 for i in range(6)]),
  ("d.f64", "F64", [4], "d", [(i + 1) / 3.0 for i in range(4)]),
  ("i8", "I8", [5], "b", [(i * 37) % 256 - 128 for i in range(5)]),
  ("u8", "U8", [6], "B", [(i * 53) % 256 for i in range(6)]),
  ("i16", "I16", [3], "h", [-30000 + i * 12345 for i in range(3)]),
  ("i32", "I32", [4], "i", [-2**31 + i * 1000003 for i in range(4)]),
  ("i64", "I64", [3], "q", [-2**63 + i * 2**40 for i in range(3)]),
  ("flag", "BOOL", [5], "?", [i % 3 == 0 for i in range(5)]),
  ("nothing", "F32", [0, 4], "f", []),
]
header = {"__metadata__": {"format": "pt", "origin": "python"}}
data = b""
for name, dt, shape, fmt, vals in reversed(specs):
  blob = struct.pack("<%d%s" % (len(vals), fmt), *vals)
  header[name] = {"shape": shape, "data_offsets": [len(data), len(data) + len(blob)], "dtype": dt}
  data += blob
text = json.dumps(dict(sorted(header.items(), reverse=True)), separators=(",", ":")).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open(sys.argv[1], "wb") as f:
  f.write(struct.pack("<Q", len(text)) + text + data)
)PY";

TEST(SafetensorsPython, ReadsFileWrittenByIndependentWriter) {
  TempDir dir;
  const fs::path p = dir / "py.safetensors";
  if (!run_python(dir, kPythonWriter, p.string())) GTEST_FAIL() << "python3 is required (scripts/install-deps.sh installs it)";
  SafetensorsFile f(p);
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"origin", "python"}}));
  EXPECT_EQ(f.tensors().size(), 11u);

  auto values = [&](const std::string& name, DType dt, Shape shape) {
    TensorView v = f.view(name);
    EXPECT_EQ(v.dtype, dt) << name;
    EXPECT_EQ(v.shape, shape) << name;
    TestTensor t{name, dt, shape, std::vector<uint8_t>(static_cast<const uint8_t*>(v.data),
                                                       static_cast<const uint8_t*>(v.data) + v.nbytes())};
    return t;
  };
  auto t = values("emb.f32", DType::F32, {3, 5});
  for (int i = 0; i < 15; ++i) EXPECT_EQ(t.value(i), (i - 7) * 0.375);
  t = values("h.f16", DType::F16, {7});
  for (int i = 0; i < 7; ++i) EXPECT_EQ(t.value(i), (i - 3) * 0.125);
  t = values("b.bf16", DType::BF16, {2, 3});
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.value(i), (i - 2) * 1.5);
  t = values("d.f64", DType::F64, {4});
  for (int i = 0; i < 4; ++i) EXPECT_EQ(t.value(i), (i + 1) / 3.0);
  t = values("i8", DType::I8, {5});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(t.int_value(i), (i * 37) % 256 - 128);
  t = values("u8", DType::U8, {6});
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.int_value(i), (i * 53) % 256);
  t = values("i16", DType::I16, {3});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(t.int_value(i), -30000 + i * 12345);
  t = values("i32", DType::I32, {4});
  for (int i = 0; i < 4; ++i) EXPECT_EQ(t.int_value(i), INT32_MIN + int64_t{i} * 1000003);
  t = values("i64", DType::I64, {3});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(t.int_value(i), INT64_MIN + int64_t{i} * (int64_t{1} << 40));
  t = values("flag", DType::BOOL, {5});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(t.int_value(i), i % 3 == 0 ? 1 : 0);
  t = values("nothing", DType::F32, {0, 4});
  EXPECT_TRUE(t.bytes.empty());
}

// Decodes a file with nothing but json/struct and prints every value.
const char* kPythonReader = R"PY(
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
header = json.loads(b[8:8 + n].decode("utf-8"))
meta = header.pop("__metadata__", None)
fmt = {"F32": "f", "F64": "d", "F16": "e", "BF16": "H", "I8": "b", "U8": "B",
       "I16": "h", "I32": "i", "I64": "q", "BOOL": "?"}
out = {"header_len": n, "data_len": len(b) - 8 - n, "metadata": meta, "tensors": {}}
for name, e in header.items():
  s, t = e["data_offsets"]
  raw = b[8 + n + s:8 + n + t]
  c = fmt[e["dtype"]]
  vals = list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(c), c), raw))
  if e["dtype"] == "BF16":
    vals = [struct.unpack("<f", struct.pack("<I", v << 16))[0] for v in vals]
  vals = [float(v) if e["dtype"] in ("F32", "F64", "F16", "BF16") else int(v) for v in vals]
  out["tensors"][name] = {"dtype": e["dtype"], "shape": e["shape"], "offsets": [s, t], "values": vals}
print(json.dumps(out))
)PY";

TEST(SafetensorsPython, IndependentReaderDecodesOurFile) {
  TempDir dir;
  const auto tensors = all_dtype_tensors();
  const fs::path p = dir / "ours.safetensors";
  write_safetensors(p, named(tensors), {{"format", "pt"}, {"step", "12"}});
  const auto out = run_python(dir, kPythonReader, p.string());
  if (!out) GTEST_FAIL() << "python3 is required (scripts/install-deps.sh installs it)";
  const Json j = Json::parse(*out);
  EXPECT_EQ(j["header_len"].get<uint64_t>() % 8, 0u);
  EXPECT_EQ(j["metadata"], Json({{"format", "pt"}, {"step", "12"}}));
  uint64_t total = 0;
  for (const TestTensor& t : tensors) total += t.bytes.size();
  EXPECT_EQ(j["data_len"].get<uint64_t>(), total);
  ASSERT_EQ(j["tensors"].size(), tensors.size());
  for (const TestTensor& t : tensors) {
    SCOPED_TRACE(t.name);
    const Json& e = j["tensors"][t.name];
    EXPECT_EQ(e["dtype"].get<std::string>(), dtype_name(t.dtype));
    EXPECT_EQ(e["shape"].get<Shape>(), t.shape);
    const Json& vals = e["values"];
    ASSERT_EQ(vals.size(), static_cast<std::size_t>(numel(t.shape)));
    for (std::size_t i = 0; i < vals.size(); ++i) {
      if (t.dtype == DType::I64) EXPECT_EQ(vals[i].get<int64_t>(), t.int_value(i)) << i;
      else EXPECT_EQ(vals[i].get<double>(), t.value(i)) << i;
    }
  }
}

// Checks the index text is byte-identical to json.dumps(indent=2, sort_keys=True) + "\n",
// which is how transformers writes model.safetensors.index.json.
const char* kPythonIndexCheck = R"PY(
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
print("same" if json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n" == text else "differs")
)PY";

// ---------------------------------------------------------------- checkpoints

TEST(Checkpoint, ShardedWriteReadRoundTripMatchesHfSplit) {
  TempDir dir;
  // Bytes: 40, 60, 40, 200, 16, 8 with a 100-byte limit. The HF split gives
  // [t0 t1] (exactly full) [t3 (oversized, own shard)] [t2 t4 t5].
  const std::vector<TestTensor> ts = {
      make_tensor("t0", DType::F32, {10}, 21),    make_tensor("t1", DType::F32, {3, 5}, 22),
      make_tensor("t2", DType::I32, {10}, 23),    make_tensor("t3", DType::F64, {25}, 24),
      make_tensor("t4", DType::BF16, {8}, 25),    make_tensor("t5", DType::U8, {8}, 26),
  };
  const fs::path ck = dir / "ck";
  write_checkpoint(ck, named(ts), 100);

  const std::string s1 = "model-00001-of-00003.safetensors", s2 = "model-00002-of-00003.safetensors",
                    s3 = "model-00003-of-00003.safetensors";
  const Json index = read_json_file(ck / "model.safetensors.index.json");
  EXPECT_EQ(index, Json::parse(R"({"metadata": {"total_size": 364}, "weight_map": {
      "t0": ")" + s1 + R"(", "t1": ")" + s1 + R"(", "t2": ")" + s3 + R"(",
      "t3": ")" + s2 + R"(", "t4": ")" + s3 + R"(", "t5": ")" + s3 + R"("}})"));
  EXPECT_FALSE(fs::exists(ck / "model.safetensors"));

  Checkpoint c(ck);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"t0", "t1", "t2", "t3", "t4", "t5"}));
  for (const TestTensor& t : ts) {
    EXPECT_TRUE(c.has(t.name));
    expect_same(t, c.get(t.name));
    EXPECT_EQ(c.info(t.name).dtype, t.dtype);
  }
  EXPECT_EQ(c.file_of("t3"), ck / s2);
  EXPECT_EQ(c.file_of("t4"), ck / s3);
  EXPECT_FALSE(c.has("t6"));
  expect_error([&] { c.get("t6"); }, {ck.string() + ": missing tensor 't6'"});
  expect_error([&] { c.file_of("t6"); }, {"missing tensor 't6'"});
  // Each shard carries the reference metadata.
  EXPECT_EQ(SafetensorsFile(ck / s3).metadata().at("format"), "pt");

  const auto verdict = run_python(dir, kPythonIndexCheck, (ck / "model.safetensors.index.json").string());
  if (!verdict) GTEST_FAIL() << "python3 is required for the index format check";
  EXPECT_EQ(*verdict, "same\n");
}

TEST(Checkpoint, SmallCheckpointIsOneFileWithoutIndex) {
  TempDir dir;
  const auto ts = all_dtype_tensors();
  write_checkpoint(dir / "one", named(ts));
  EXPECT_TRUE(fs::exists(dir / "one" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "one" / "model.safetensors.index.json"));
  Checkpoint c(dir / "one");
  EXPECT_EQ(c.names().size(), ts.size());
  for (const TestTensor& t : ts) expect_same(t, c.get(t.name));
  // A single oversized tensor is one shard, hence also one plain file.
  write_checkpoint(dir / "big", {ts[0].named()}, 8);
  EXPECT_TRUE(fs::exists(dir / "big" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "big" / "model.safetensors.index.json"));
}

TEST(Checkpoint, FindsModelFileOrTheOnlySafetensorsFile) {
  TempDir dir;
  const auto a = make_tensor("a", DType::F32, {3}, 31), b = make_tensor("b", DType::F32, {2}, 32);
  fs::create_directories(dir / "only");
  write_safetensors(dir / "only" / "weights.safetensors", {a.named()});
  write_bytes(dir / "only" / "notes.txt", "not a checkpoint");
  Checkpoint only(dir / "only");
  expect_same(a, only.get("a"));

  // model.safetensors wins over other files.
  fs::create_directories(dir / "pref");
  write_safetensors(dir / "pref" / "model.safetensors", {a.named()});
  write_safetensors(dir / "pref" / "other.safetensors", {b.named()});
  Checkpoint pref(dir / "pref");
  EXPECT_TRUE(pref.has("a"));
  EXPECT_FALSE(pref.has("b"));

  fs::create_directories(dir / "two");
  write_safetensors(dir / "two" / "x.safetensors", {a.named()});
  write_safetensors(dir / "two" / "y.safetensors", {b.named()});
  expect_error([&] { Checkpoint c(dir / "two"); }, {"no safetensors checkpoint in " + (dir / "two").string()});
  fs::create_directories(dir / "empty");
  expect_error([&] { Checkpoint c(dir / "empty"); }, {"no safetensors checkpoint in " + (dir / "empty").string()});
  expect_error([&] { Checkpoint c(dir / "absent"); }, {"no safetensors checkpoint in " + (dir / "absent").string()});
}

// Writes shards a (tensors x, y) and b (tensor z) plus the given index text.
fs::path index_dir(const TempDir& dir, const std::string& weight_map, bool z_also_in_a = false) {
  const fs::path ck = dir / "idx";
  fs::create_directories(ck);
  const auto x = make_tensor("x", DType::F32, {2}, 41), y = make_tensor("y", DType::F32, {2}, 42),
             z = make_tensor("z", DType::F32, {2}, 43);
  std::vector<NamedTensor> in_a = {x.named(), y.named()};
  if (z_also_in_a) in_a.push_back(z.named());
  write_safetensors(ck / "a.safetensors", in_a);
  write_safetensors(ck / "b.safetensors", {z.named()});
  write_bytes(ck / "model.safetensors.index.json", R"({"metadata": {}, "weight_map": )" + weight_map + "}");
  return ck;
}

TEST(Checkpoint, IndexMapsTensorsToShards) {
  TempDir dir;
  const fs::path ck = index_dir(dir, R"({"x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"})");
  Checkpoint c(ck);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_EQ(c.file_of("z"), ck / "b.safetensors");
  EXPECT_EQ(c.file_of("x"), ck / "a.safetensors");
}

TEST(CheckpointMalformed, TensorMissingFromItsShard) {
  TempDir dir;
  const fs::path ck = index_dir(dir, R"({"x": "a.safetensors", "z": "a.safetensors"})");
  expect_error([&] { Checkpoint c(ck); },
               {(ck / "model.safetensors.index.json").string(), "'z'", "a.safetensors"});
}

TEST(CheckpointMalformed, ShardFileMissing) {
  TempDir dir;
  const fs::path ck = index_dir(dir, R"({"x": "gone.safetensors"})");
  expect_error([&] { Checkpoint c(ck); }, {(ck / "gone.safetensors").string()});
}

TEST(CheckpointMalformed, ShardNameEscapesDirectory) {
  TempDir dir;
  for (const std::string bad : {"../a.safetensors", "sub/a.safetensors", "/etc/passwd", "..", ""}) {
    SCOPED_TRACE(bad);
    const fs::path ck = index_dir(dir, R"({"x": ")" + bad + R"("})");
    expect_error([&] { Checkpoint c(ck); }, {(ck / "model.safetensors.index.json").string(), "'x'", "shard name"});
  }
}

TEST(CheckpointMalformed, DuplicateTensorAcrossShards) {
  TempDir dir;
  const fs::path ck = index_dir(dir, R"({"x": "a.safetensors", "z": "b.safetensors"})", /*z_also_in_a=*/true);
  expect_error([&] { Checkpoint c(ck); }, {ck.string(), "'z'", "a.safetensors", "b.safetensors"});
}

TEST(CheckpointMalformed, IndexWithoutWeightMapOrWithBadEntries) {
  TempDir dir;
  const fs::path ck = index_dir(dir, "[]");
  const std::string iname = (ck / "model.safetensors.index.json").string();
  expect_error([&] { Checkpoint c(ck); }, {iname, "weight_map"});
  write_bytes(ck / "model.safetensors.index.json", R"({"weight_map": {"x": 3}})");
  expect_error([&] { Checkpoint c(ck); }, {iname, "'x'", "not a string"});
  write_bytes(ck / "model.safetensors.index.json", R"({"weight_map": )");
  expect_error([&] { Checkpoint c(ck); }, {iname, "invalid JSON"});
}

// ---------------------------------------------- malformed files, one per rule

const std::string kGood = R"("w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]})";

TEST(SafetensorsMalformed, FileShorterThan8Bytes) {
  TempDir dir;
  expect_open_error(dir, "", {"0 bytes", "shorter than"});
  expect_open_error(dir, std::string("\x02\0\0\0\0", 5), {"5 bytes", "shorter than"});
}

TEST(SafetensorsMalformed, HeaderLengthPastEndOfFile) {
  TempDir dir;
  expect_open_error(dir, le64(1000) + "{}", {"header length 1000", "past the end"});
  expect_open_error(dir, le64(3), {"header length 3", "past the end"});
}

TEST(SafetensorsMalformed, HeaderLengthAbsurd) {
  TempDir dir;
  expect_open_error(dir, le64((uint64_t{100} << 20) + 1) + "{}", {"100 MB"});
  expect_open_error(dir, le64(~uint64_t{0}) + "{}", {"100 MB"});
}

TEST(SafetensorsMalformed, HeaderNotJson) {
  TempDir dir;
  expect_open_error(dir, raw_file("{\"w\": {"), {"not valid JSON"});
  expect_open_error(dir, raw_file(std::string("{}\0\0\0\0\0\0", 8)), {"not valid JSON", "NUL"});  // NUL padding
  expect_open_error(dir, raw_file("{} x"), {"not valid JSON"});  // trailing garbage
  expect_open_error(dir, raw_file("{\"\xff\xfe\": 1}"), {"not valid JSON"});              // bad UTF-8
}

TEST(SafetensorsMalformed, HeaderNotObject) {
  TempDir dir;
  expect_open_error(dir, raw_file("[1, 2]  "), {"not a JSON object"});
  expect_open_error(dir, raw_file("\"str\"   "), {"not a JSON object"});
}

TEST(SafetensorsMalformed, EntryNotObject) {
  TempDir dir;
  expect_open_error(dir, raw_file(R"({"w": 5})"), {"tensor 'w'", "not an object"});
  expect_open_error(dir, raw_file(R"({"w": [0, 4]})"), {"tensor 'w'", "not an object"});
}

TEST(SafetensorsMalformed, EntryMissingField) {
  TempDir dir;
  expect_open_error(dir, raw_file(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4), {"tensor 'w'", "'dtype'"});
  expect_open_error(dir, raw_file(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4), {"tensor 'w'", "'shape'"});
  expect_open_error(dir, raw_file(R"({"w":{"dtype":"F32","shape":[1]}})", 4), {"tensor 'w'", "'data_offsets'"});
}

TEST(SafetensorsMalformed, UnknownDtype) {
  TempDir dir;
  expect_open_error(dir, raw_file(R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4),
                    {"tensor 'w'", "'F8_E4M3'"});
  expect_open_error(dir, raw_file(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", 4),
                    {"tensor 'w'", "'f32'"});
  expect_open_error(dir, raw_file(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4),
                    {"tensor 'w'", "dtype"});
}

TEST(SafetensorsMalformed, NegativeOrNonIntegerDims) {
  TempDir dir;
  for (const std::string shape : {"[-1,4]", "[2.0,3]", "[1.5]", "[\"2\"]", "[null]", "5", "[1e3]"}) {
    SCOPED_TRACE(shape);
    expect_open_error(dir, raw_file(R"({"w":{"dtype":"U8","shape":)" + shape + R"(,"data_offsets":[0,0]}})"),
                      {"tensor 'w'", "shape"});
  }
}

TEST(SafetensorsMalformed, ShapeProductOverflow) {
  TempDir dir;
  // 2^32 * 2^32 wraps to 0 in 64 bits; a later 0 must not hide it.
  expect_open_error(dir, raw_file(R"({"w":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"),
                    {"tensor 'w'", "overflows"});
  expect_open_error(dir, raw_file(R"({"w":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})"),
                    {"tensor 'w'", "overflows"});
  // Fits uint64 but not int64 (numel() is int64).
  expect_open_error(dir, raw_file(R"({"w":{"dtype":"U8","shape":[4294967296,2147483648,0],"data_offsets":[0,0]}})"),
                    {"tensor 'w'", "overflows"});
  // Element count fits, byte count (x 8) does not.
  expect_open_error(dir, raw_file(R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})"),
                    {"tensor 'w'", "overflows"});
  expect_open_error(dir, raw_file(R"({"w":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,0]}})"),
                    {"tensor 'w'", "overflows"});
}

TEST(SafetensorsMalformed, ByteRangeDoesNotMatchShape) {
  TempDir dir;
  expect_open_error(dir, raw_file(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 24),
                    {"tensor 'w'", "hold 20 bytes", "needs 24"});
  expect_open_error(dir, raw_file(R"({"w":{"dtype":"BF16","shape":[0],"data_offsets":[0,2]}})", 2),
                    {"tensor 'w'", "needs 0"});
}

TEST(SafetensorsMalformed, BadDataOffsets) {
  TempDir dir;
  expect_open_error(dir, raw_file(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}})", 8),
                    {"tensor 'w'", "begin > end"});
  for (const std::string off : {"[0]", "[0,4,8]", "[-4,0]", "[0,4.0]", "{}", "[\"0\",\"4\"]"}) {
    SCOPED_TRACE(off);
    expect_open_error(dir, raw_file(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":)" + off + "}}", 8),
                      {"tensor 'w'", "data_offsets"});
  }
}

TEST(SafetensorsMalformed, RangePastDataRegion) {
  TempDir dir;
  expect_open_error(dir, raw_file("{" + kGood + "}", 23), {"tensor 'w'", "past the data region"});
  // Even a zero-size tensor must not point beyond the data.
  expect_open_error(dir, raw_file(R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[9,9]}})", 8),
                    {"tensor 'e'", "past the data region"});
  // An offset near 2^64 must not wrap around.
  expect_open_error(dir,
                    raw_file(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[18446744073709551612,18446744073709551616]}})", 8),
                    {"tensor 'w'", "data_offsets"});
}

TEST(SafetensorsMalformed, OverlappingRanges) {
  TempDir dir;
  expect_open_error(dir, raw_file("{" + kGood + R"(,"v":{"dtype":"U8","shape":[4],"data_offsets":[20,24]}})", 24),
                    {"'w'", "'v'", "overlap"});
  // Overlap with a tensor that is not the immediate predecessor in file order.
  expect_open_error(dir,
                    raw_file("{" + kGood + R"(,"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
                                           R"("b":{"dtype":"U8","shape":[4],"data_offsets":[10,14]}})", 24),
                    {"'w'", "overlap"});
  // Identical ranges overlap too.
  expect_open_error(dir, raw_file("{" + kGood + R"(,"x":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}})", 24),
                    {"'w'", "'x'", "overlap"});
}

TEST(SafetensorsMalformed, MetadataNotStringMap) {
  TempDir dir;
  expect_open_error(dir, raw_file(R"({"__metadata__":{"format":"pt","n":1}})"), {"__metadata__", "'n'"});
  expect_open_error(dir, raw_file(R"({"__metadata__":["pt"]})"), {"__metadata__", "not an object"});
  expect_open_error(dir, raw_file(R"({"__metadata__":"pt"})"), {"__metadata__", "not an object"});
}

TEST(SafetensorsMalformed, TensorNamedTwice) {
  TempDir dir;
  expect_open_error(dir, raw_file("{" + kGood + "," + kGood + "}", 24), {"tensor 'w'", "twice"});
}

TEST(Safetensors, AcceptsZeroSizeTensorsGapsAndTrailingPadding) {
  TempDir dir;
  const fs::path p = dir / "ok.safetensors";
  write_bytes(p, raw_file("{" + kGood + R"(,"e1":{"dtype":"F32","shape":[0,7],"data_offsets":[30,30]},)"
                                        R"("e2":{"dtype":"I64","shape":[0],"data_offsets":[32,32]},)"
                                        R"("v":{"dtype":"U8","shape":[2],"data_offsets":[28,30]}}   )", 32));
  SafetensorsFile f(p);
  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.tensors()[0].name, "w");
  EXPECT_EQ(f.tensors()[1].name, "v");
  EXPECT_EQ(f.tensors()[2].name, "e1");
  EXPECT_EQ(f.tensors()[3].name, "e2");
  EXPECT_EQ(f.view("e2").nbytes(), 0u);
  EXPECT_EQ(static_cast<const uint8_t*>(f.view("e2").data), f.mapping().data() + f.mapping().size());
  EXPECT_EQ(f.view("v").shape, (Shape{2}));
}

}  // namespace
}  // namespace zotune
