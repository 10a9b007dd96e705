// Randomized corruption of safetensors files: every variant must either open
// with all views inside the mapping, or throw zotune::Error naming the file.
// Run under -DZOTUNE_SANITIZE=ON to catch out-of-bounds reads while parsing.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fs.h"
#include "io/safetensors.h"

namespace zotune {
namespace {
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/zotune_iofuzz_XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A valid file with several dtypes, zero-size tensors and metadata.
std::string valid_file(const TempDir& dir) {
  std::vector<float> a(12);
  std::vector<uint16_t> b(5);
  std::vector<int64_t> c(3);
  std::vector<uint8_t> d(7);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = 0.5f * static_cast<float>(i);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint16_t>(0x3c00 + i);
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = -static_cast<int64_t>(i) * 1000;
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint8_t>(i * 31);
  const fs::path p = dir / "valid.safetensors";
  write_safetensors(p,
                    {{"layers.0.w", TensorView{DType::F32, {3, 4}, a.data()}},
                     {"layers.0.ln", TensorView{DType::F16, {5}, b.data()}},
                     {"empty", TensorView{DType::F32, {0, 3}, nullptr}},
                     {"ids", TensorView{DType::I64, {3}, c.data()}},
                     {"mask", TensorView{DType::U8, {7}, d.data()}},
                     {"scalar", TensorView{DType::BOOL, {}, d.data()}}},
                    {{"format", "pt"}, {"k", "v"}});
  return read_file(p);
}

// One corruption of `good`; header_end is 8 + header length.
std::string mutate(const std::string& good, std::size_t header_end, std::mt19937_64& rng) {
  std::string s = good;
  auto pick = [&](std::size_t lo, std::size_t hi) { return lo + rng() % (hi - lo); };  // [lo, hi)
  static const std::vector<std::string> tokens = {
      "-",  "0",   "9",  "18446744073709551615", "1e308", "2.5", "\"",  "{",  "}", "[", "]", ",", ":",
      "\\", "null", "\"F64\"", "\"__metadata__\"", "99999999999999999999999", "\xff", std::string(1, '\0')};
  switch (rng() % 6) {
    case 0:  // flip bits in the header
      for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k) s[pick(8, header_end)] ^= static_cast<char>(1 << (rng() % 8));
      break;
    case 1:  // flip bits anywhere, including the length prefix
      for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k) s[pick(0, s.size())] ^= static_cast<char>(1 << (rng() % 8));
      break;
    case 2:  // truncate
      s.resize(pick(0, s.size()));
      break;
    case 3: {  // perturb the length prefix
      uint64_t len = header_end - 8;
      switch (rng() % 3) {
        case 0: len += static_cast<int64_t>(rng() % 33) - 16; break;
        case 1: len = rng(); break;
        default: len ^= uint64_t{1} << (rng() % 64); break;
      }
      for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(len >> (8 * i));
      break;
    }
    case 4: {  // overwrite header bytes with a JSON-ish token (length kept)
      const std::string& t = tokens[rng() % tokens.size()];
      const std::size_t at = pick(8, header_end);
      s.replace(at, std::min(t.size(), header_end - at), t.substr(0, header_end - at));
      break;
    }
    default: {  // change a digit in the header: offsets and shapes go wrong
      std::vector<std::size_t> digits;
      for (std::size_t i = 8; i < header_end; ++i)
        if (s[i] >= '0' && s[i] <= '9') digits.push_back(i);
      s[digits[rng() % digits.size()]] = static_cast<char>('0' + rng() % 10);
      break;
    }
  }
  return s;
}

TEST(SafetensorsFuzz, CorruptedFilesOpenSafelyOrThrow) {
  TempDir dir;
  const std::string good = valid_file(dir);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(good[i]);
  const std::size_t header_end = 8 + header_len;
  ASSERT_LT(header_end, good.size());

  std::mt19937_64 rng(20240611);
  int opened = 0, rejected = 0;
  unsigned long touched = 0;  // printed, so the reads below are not optimized away
  for (int variant = 0; variant < 10000; ++variant) {
    const std::string bytes = mutate(good, header_end, rng);
    // A fresh name per variant: rewriting one file in place makes ext4 flush
    // it on every close (auto_da_alloc), which costs seconds.
    const fs::path p = dir / ("fuzz" + std::to_string(variant) + ".safetensors");
    write_bytes(p, bytes);
    struct Remove {
      fs::path p;
      ~Remove() { std::error_code ec; fs::remove(p, ec); }
    } remove_after{p};
    try {
      SafetensorsFile f(p);
      const uint8_t* lo = f.mapping().data();
      const uint8_t* hi = lo + f.mapping().size();
      ASSERT_EQ(f.mapping().size(), bytes.size());
      ASSERT_LE(f.data_offset(), bytes.size());
      unsigned sum = 0;
      for (const TensorInfo& t : f.tensors()) {
        const TensorView v = f.view(t);
        const uint8_t* b = static_cast<const uint8_t*>(v.data);
        ASSERT_LE(t.begin, t.end) << variant;
        ASSERT_EQ(v.nbytes(), t.end - t.begin) << variant << " " << t.name;
        ASSERT_GE(b, lo + f.data_offset()) << variant << " " << t.name;
        ASSERT_LE(b + v.nbytes(), hi) << variant << " " << t.name;
        for (std::size_t i = 0; i < v.nbytes(); ++i) sum += b[i];  // touch: ASan sees stray reads
      }
      // Accepted files must describe the same bytes the test wrote.
      if (f.mapping().size() > 0) {
        ASSERT_EQ(std::memcmp(lo, bytes.data(), bytes.size()), 0);
      }
      touched += sum;
      ++opened;
    } catch (const Error& e) {
      ASSERT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
      ++rejected;
    }
  }
  // Both outcomes must occur, or the mutations are not reaching the validator.
  EXPECT_GT(opened, 100);
  EXPECT_GT(rejected, 1000);
  std::printf("fuzz: %d variants opened, %d rejected (byte sum %lu)\n", opened, rejected, touched);
}

}  // namespace
}  // namespace zotune
