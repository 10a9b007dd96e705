// The CLI contract and its error handling: every malformed input ends with a
// clear message naming the file and field/tensor and exit code 1, never a crash.
#include <gtest/gtest.h>

#include <fstream>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace zotune {
namespace {

namespace fs = std::filesystem;
using testing::quote;
using testing::run_zotune;
using testing::TempDir;

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

// Copies a golden model so tests may damage the copy.
fs::path copy_model(const TempDir& tmp, const std::string& golden_case) {
  fs::path dst = tmp / golden_case;
  fs::create_directories(dst);
  for (auto& e : fs::directory_iterator(testing::golden_dir() / golden_case)) fs::copy(e.path(), dst / e.path().filename());
  return dst;
}

void expect_clean_error(const testing::RunResult& r, std::initializer_list<std::string> needles) {
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("zotune: error:"), std::string::npos) << r.output;
  for (const auto& n : needles) EXPECT_NE(r.output.find(n), std::string::npos) << "missing '" << n << "' in: " << r.output;
}

TEST(Cli, ForwardWritesLogitsAndLossMatchingGolden) {
  TempDir tmp;
  fs::path model = testing::golden_dir() / "llama";
  auto r = run_zotune("forward --model " + quote(model) + " --input " + quote(model / "input.json") + " --output " +
                      quote(tmp / "out.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  SafetensorsFile out(tmp / "out.safetensors");
  SafetensorsFile want(model / "expected.safetensors");
  EXPECT_EQ(out.view("logits").dtype, DType::F32);
  EXPECT_EQ(out.view("logits").shape, want.view("logits").shape);
  EXPECT_EQ(out.view("loss").shape, Shape{});
  EXPECT_NEAR(*out.view("loss").f32(), *want.view("loss").f32(), 1e-5 * std::fabs(*want.view("loss").f32()));
}

TEST(Cli, ForwardWithoutMaskMeansAllOnes) {
  TempDir tmp;
  fs::path model = testing::golden_dir() / "gpt2";
  write_text(tmp / "in.json", R"({"input_ids": [[5, 6, 7, 8], [9, 10, 11, 12]]})");
  write_text(tmp / "in_mask.json", R"({"input_ids": [[5, 6, 7, 8], [9, 10, 11, 12]], "attention_mask": [[1,1,1,1],[1,1,1,1]]})");
  auto a = run_zotune("forward --model " + quote(model) + " --input " + quote(tmp / "in.json") + " --output " + quote(tmp / "a.safetensors"));
  auto b = run_zotune("forward --model " + quote(model) + " --input " + quote(tmp / "in_mask.json") + " --output " + quote(tmp / "b.safetensors"));
  ASSERT_EQ(a.exit_code, 0) << a.output;
  ASSERT_EQ(b.exit_code, 0) << b.output;
  SafetensorsFile fa(tmp / "a.safetensors"), fb(tmp / "b.safetensors");
  ASSERT_EQ(fa.view("logits").nbytes(), fb.view("logits").nbytes());
  EXPECT_EQ(0, std::memcmp(fa.view("logits").data, fb.view("logits").data, fa.view("logits").nbytes()));
  EXPECT_GT(*fa.view("loss").f32(), 0.0f);
}

TEST(Cli, InspectReportsParametersAndBlocks) {
  auto r = run_zotune("inspect --json --model " + quote(testing::golden_dir() / "qwen3"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Json j = Json::parse(r.output);
  EXPECT_EQ(j["model_type"], "qwen3");
  EXPECT_EQ(j["blocks"].size(), j["layers"].get<size_t>() + 2);
  int64_t sum = 0;
  for (auto& b : j["blocks"]) sum += b["parameters"].get<int64_t>();
  EXPECT_EQ(sum, j["parameters"].get<int64_t>());
  EXPECT_GT(sum, 1000);
}

TEST(Cli, InitWritesLoadableDeterministicCheckpoints) {
  TempDir tmp;
  for (const char* arch : {"gpt2", "opt", "llama", "qwen3"}) {
    for (const char* dtype : {"fp32", "bf16"}) {
      std::string name = std::string(arch) + "_" + dtype;
      auto r = run_zotune(std::string("init --arch ") + arch + " --preset tiny --dtype " + dtype + " --seed 7 --out " +
                          quote(tmp / name));
      ASSERT_EQ(r.exit_code, 0) << r.output;
      auto ins = run_zotune("inspect --json --model " + quote(tmp / name));
      ASSERT_EQ(ins.exit_code, 0) << ins.output;
      EXPECT_EQ(Json::parse(ins.output)["dtypes"].begin().key(), dtype == std::string("fp32") ? "F32" : "BF16");
      auto gen = run_zotune("generate --model " + quote(tmp / name) + " --input-ids 3,4,5 --max-new-tokens 4");
      ASSERT_EQ(gen.exit_code, 0) << gen.output;
      EXPECT_EQ(Json::parse(gen.output)["ids"].size(), 4u) << gen.output;
    }
  }
  // Same seed, same bytes; a different seed, different bytes.
  ASSERT_EQ(run_zotune("init --arch gpt2 --preset tiny --seed 7 --out " + quote(tmp / "again")).exit_code, 0);
  ASSERT_EQ(run_zotune("init --arch gpt2 --preset tiny --seed 8 --out " + quote(tmp / "other")).exit_code, 0);
  auto bytes = [](const fs::path& p) { std::ifstream f(p, std::ios::binary); return std::string(std::istreambuf_iterator<char>(f), {}); };
  EXPECT_EQ(bytes(tmp / "gpt2_fp32" / "model.safetensors"), bytes(tmp / "again" / "model.safetensors"));
  EXPECT_NE(bytes(tmp / "gpt2_fp32" / "model.safetensors"), bytes(tmp / "other" / "model.safetensors"));
}

TEST(Cli, InitRefusesToOverwrite) {
  TempDir tmp;
  ASSERT_EQ(run_zotune("init --arch gpt2 --preset tiny --out " + quote(tmp / "m")).exit_code, 0);
  expect_clean_error(run_zotune("init --arch gpt2 --preset tiny --out " + quote(tmp / "m")), {"refusing to overwrite"});
  expect_clean_error(run_zotune("init --arch gpt3 --preset tiny --out " + quote(tmp / "x")), {"gpt3"});
  expect_clean_error(run_zotune("init --arch llama --preset huge --out " + quote(tmp / "x")), {"huge", "llama-3.2-1b"});
}

TEST(Cli, GreedyGenerationMatchesGolden) {
  fs::path model = testing::golden_dir() / "opt";
  Json g = read_json_file(model / "generate.json");
  std::string ids;
  for (auto& v : g["prompt_ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(v.get<int>());
  auto r = run_zotune("generate --json --model " + quote(model) + " --input-ids " + ids + " --max-new-tokens " +
                      std::to_string(g["max_new_tokens"].get<int>()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Json::parse(r.output)["ids"], g["generated_ids"]);
}

// ---- malformed inputs

TEST(CliMalformed, MissingConfig) {
  TempDir tmp;
  fs::create_directories(tmp / "m");
  expect_clean_error(run_zotune("inspect --model " + quote(tmp / "m")), {"config.json"});
}

TEST(CliMalformed, UnknownArchitecture) {
  TempDir tmp;
  fs::path m = copy_model(tmp, "gpt2");
  write_text(m / "config.json", R"({"model_type": "mamba", "vocab_size": 10})");
  expect_clean_error(run_zotune("inspect --model " + quote(m)), {"config.json", "model_type", "mamba"});
}

TEST(CliMalformed, BadConfigJson) {
  TempDir tmp;
  fs::path m = copy_model(tmp, "gpt2");
  write_text(m / "config.json", R"({"model_type": "gpt2", "n_embd": )");
  expect_clean_error(run_zotune("inspect --model " + quote(m)), {"config.json", "invalid JSON"});
}

TEST(CliMalformed, ConfigFieldWrongType) {
  TempDir tmp;
  fs::path m = copy_model(tmp, "llama");
  Json c = read_json_file(m / "config.json");
  c["hidden_size"] = "big";
  write_text(m / "config.json", c.dump());
  expect_clean_error(run_zotune("inspect --model " + quote(m)), {"config.json", "hidden_size"});
}

TEST(CliMalformed, UnsupportedConfigOption) {
  TempDir tmp;
  fs::path m = copy_model(tmp, "llama");
  Json c = read_json_file(m / "config.json");
  c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  write_text(m / "config.json", c.dump());
  expect_clean_error(run_zotune("inspect --model " + quote(m)), {"config.json", "rope_scaling", "yarn"});
}

TEST(CliMalformed, TruncatedWeights) {
  TempDir tmp;
  fs::path m = copy_model(tmp, "qwen3");
  fs::resize_file(m / "model.safetensors", fs::file_size(m / "model.safetensors") / 2);
  expect_clean_error(run_zotune("forward --model " + quote(m) + " --input " + quote(m / "input.json") + " --output " +
                                quote(tmp / "o.safetensors")),
                     {"model.safetensors"});
  EXPECT_FALSE(fs::exists(tmp / "o.safetensors"));
}

TEST(CliMalformed, MissingTensorWrongShapeWrongDtype) {
  TempDir tmp;
  fs::path src = testing::golden_dir() / "gpt2";
  SafetensorsFile f(src / "model.safetensors");
  auto rewrite = [&](const std::string& name, auto&& edit) {
    fs::path m = tmp / name;
    fs::create_directories(m);
    fs::copy(src / "config.json", m / "config.json");
    std::vector<NamedTensor> ts;
    std::vector<std::vector<uint8_t>> keep;
    for (auto& t : f.tensors()) {
      NamedTensor nt{t.name, f.view(t)};
      if (edit(nt, keep)) ts.push_back(nt);
    }
    write_safetensors(m / "model.safetensors", ts);
    return m;
  };
  const std::string victim = "transformer.h.1.attn.c_attn.weight";
  fs::path missing = rewrite("missing", [&](NamedTensor& t, auto&) { return t.name != victim; });
  expect_clean_error(run_zotune("inspect --model " + quote(missing)), {"missing tensor", victim});

  fs::path shape = rewrite("shape", [&](NamedTensor& t, auto&) {
    if (t.name == victim) t.view.shape = {t.view.shape[1], t.view.shape[0]};
    return true;
  });
  expect_clean_error(run_zotune("inspect --model " + quote(shape)), {"model.safetensors", victim, "shape"});

  fs::path dtype = rewrite("dtype", [&](NamedTensor& t, auto&) {
    if (t.name == victim) {
      t.view.dtype = DType::I32;
    }
    return true;
  });
  expect_clean_error(run_zotune("inspect --model " + quote(dtype)), {"model.safetensors", victim, "I32"});
}

TEST(CliMalformed, BadForwardInput) {
  TempDir tmp;
  fs::path m = testing::golden_dir() / "opt";
  auto fwd = [&](const std::string& json) {
    write_text(tmp / "in.json", json);
    return run_zotune("forward --model " + quote(m) + " --input " + quote(tmp / "in.json") + " --output " +
                      quote(tmp / "o.safetensors"));
  };
  expect_clean_error(fwd("{\"input_ids\": [[1, 2, 3], [4, 5]]}"), {"in.json", "input_ids[1]"});
  expect_clean_error(fwd("{\"input_ids\": [[1, 2, 99999]]}"), {"in.json", "input_ids[0][2]", "vocabulary"});
  expect_clean_error(fwd("{\"input_ids\": [[1, 2, \"x\"]]}"), {"in.json", "input_ids[0][2]"});
  expect_clean_error(fwd("{\"input_ids\": [[1, 2, 3]], \"attention_mask\": [[1, 2, 1]]}"), {"in.json", "attention_mask[0][1]"});
  expect_clean_error(fwd("{\"input_ids\": [[1, 2, 3]], \"attention_mask\": [[1, 1]]}"), {"in.json", "attention_mask"});
  expect_clean_error(fwd("{\"tokens\": [[1]]}"), {"in.json", "input_ids"});
  expect_clean_error(fwd("[1, 2"), {"in.json", "invalid JSON"});
  EXPECT_FALSE(fs::exists(tmp / "o.safetensors"));
}

TEST(CliMalformed, BadGenerateArguments) {
  fs::path m = testing::golden_dir() / "gpt2";
  expect_clean_error(run_zotune("generate --model " + quote(m) + " --input-ids 1,x,3"), {"--input-ids", "'x'"});
  expect_clean_error(run_zotune("generate --model " + quote(m) + " --input-ids 1,2 --top-p 0"), {"top_p"});
}

}  // namespace
}  // namespace zotune
