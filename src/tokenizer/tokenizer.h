// zotune's tokenizers: Hugging Face tokenizer.json files (BPE model, byte-level
// or SentencePiece-style with byte fallback) and the older vocab.json +
// merges.txt pair, encoding and decoding exactly as HF `tokenizers` does.
//
//   auto tok = zotune::Tokenizer::load("models/Qwen3-0.6B");
//   std::vector<int32_t> ids = tok.encode("Hello world");      // add_special_tokens=True
//   std::string text = tok.decode(ids);
//
// A Tokenizer is immutable after load and cheap to copy (shared state); every
// const method may be called from many threads at once.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace zotune {

namespace tok {
struct Pipeline;
}

class Tokenizer {
 public:
  // `dir` is a model directory or one holding only tokenizer files. Reads
  // tokenizer.json if present, else vocab.json + merges.txt, plus
  // tokenizer_config.json and special_tokens_map.json when present.
  // Throws zotune::Error naming the file and field at fault.
  static Tokenizer load(const std::filesystem::path& dir);

  // Text must be valid UTF-8 (else zotune::Error). add_special_tokens adds
  // what the post-processor adds (e.g. LLaMA's BOS), as HF's default does;
  // special tokens written in the text are always recognised.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // No clean-up of tokenization spaces: decode(encode(t)) gives t back for the
  // byte-level families. Ids that no token has are an error.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token string (byte-level or ▁ form, as in the vocabulary); Error if none.
  std::string id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;
  // Largest id of the model vocabulary and the added tokens, plus one.
  int64_t vocab_size() const;

  // From tokenizer_config.json / special_tokens_map.json; empty if unset.
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  std::optional<int32_t> unk_id() const;
  // The config's clean_up_tokenization_spaces (what HF's decode() would apply).
  bool clean_up_tokenization_spaces() const;
  // HF's clean_up_tokenization: " ." -> "." , " n't" -> "n't", etc.
  static std::string clean_up_tokenization(std::string text);

  // The tokenizer files found in the directory (to copy into checkpoints).
  const std::vector<std::filesystem::path>& files() const;

 private:
  explicit Tokenizer(std::shared_ptr<const tok::Pipeline> p) : p_(std::move(p)) {}
  std::shared_ptr<const tok::Pipeline> p_;
};

}  // namespace zotune
