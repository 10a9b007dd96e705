// Encode throughput of the tokenizer families on English prose (Brown corpus)
// and on a >= 1 MB mixed-language text (the UDHR in ~500 languages).
// Data: scripts/fetch-tokenizer-data.sh (or $ZOTUNE_TOKENIZER_DATA).
//
//   bench_tokenizer                      all families, warm and cold cache
//   bench_tokenizer --benchmark_filter=gpt2
//
// "warm": the word cache is filled by the first iteration (a long-running data
// loader); "cold": a freshly loaded tokenizer each iteration (load not timed).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "base/fs.h"
#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;

fs::path data_root() {
  const char* env = std::getenv("ZOTUNE_TOKENIZER_DATA");
  return env && *env ? fs::path(env) : fs::path(ZOTUNE_SOURCE_DIR) / ".cache" / "tokenizer-data";
}

void encode_warm(benchmark::State& state, const fs::path& dir, const std::string* text) {
  const zotune::Tokenizer tok = zotune::Tokenizer::load(dir);
  std::size_t tokens = 0;
  for (auto _ : state) {
    auto ids = tok.encode(*text, false);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text->size()));
  state.counters["MB"] = static_cast<double>(text->size()) / 1e6;
  state.counters["bytes/token"] = static_cast<double>(text->size()) / static_cast<double>(tokens);
}

void encode_cold(benchmark::State& state, const fs::path& dir, const std::string* text) {
  for (auto _ : state) {
    state.PauseTiming();
    const zotune::Tokenizer tok = zotune::Tokenizer::load(dir);
    state.ResumeTiming();
    auto ids = tok.encode(*text, false);
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text->size()));
}

void decode_warm(benchmark::State& state, const fs::path& dir, const std::string* text) {
  const zotune::Tokenizer tok = zotune::Tokenizer::load(dir);
  const std::vector<int32_t> ids = tok.encode(*text, false);
  for (auto _ : state) {
    std::string back = tok.decode(ids);
    benchmark::DoNotOptimize(back.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text->size()));
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path root = data_root();
  if (!fs::is_directory(root / "text")) {
    std::fprintf(stderr, "bench_tokenizer: no data in %s: run scripts/fetch-tokenizer-data.sh\n", root.c_str());
    return 1;
  }
  // 2 MB of English keeps one warm iteration near 0.1 s; mixed.txt is 2.1 MB.
  static const std::string english = zotune::read_file(root / "text" / "english.txt").substr(0, 2000000);
  static const std::string mixed = zotune::read_file(root / "text" / "mixed.txt");
  for (const char* family : {"gpt2", "qwen3", "llama2", "llama3"}) {
    const fs::path dir = root / family;
    for (const auto& [name, text] : {std::pair{"english", &english}, std::pair{"mixed", &mixed}}) {
      const std::string label = std::string(family) + "/" + name;
      benchmark::RegisterBenchmark(("encode_warm/" + label).c_str(), encode_warm, dir, text)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(1.0);
      benchmark::RegisterBenchmark(("encode_cold/" + label).c_str(), encode_cold, dir, text)
          ->Unit(benchmark::kMillisecond)
          ->Iterations(3);
    }
  }
  benchmark::RegisterBenchmark("decode_warm/gpt2/english", decode_warm, root / "gpt2", &english)
      ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
