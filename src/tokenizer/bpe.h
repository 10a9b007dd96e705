// The BPE model of Hugging Face tokenizers: a vocabulary, ranked merges, and the
// options byte_fallback, unk_token/fuse_unk, ignore_merges, continuing_subword_prefix
// and end_of_word_suffix. Words are merged lowest rank first, leftmost first.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/vocab.h"

namespace zotune::tok {

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  // `where` names the file (and field) the vocabulary and merges came from;
  // a merge naming a token that is not in the vocabulary is an error there.
  BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           BpeOptions options, const std::string& where);
  ~BpeModel();

  const Vocab& vocab() const { return vocab_; }
  // Appends the ids of one pre-tokenized word. Thread-safe.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;
  // True if words are cut before each "▁" that follows another character
  // (see the constructor). Exposed for tests.
  bool segments_at_metaspace() const { return segment_at_metaspace_; }
  // The same without the cache (the reference the cache must agree with).
  void tokenize_uncached(std::string_view word, std::vector<int32_t>& out) const;

 private:
  struct MergeTable;
  class Cache;
  int32_t char_id(std::string_view ch, bool first, bool last) const;
  void tokenize_segment(std::string_view word, std::vector<int32_t>& out) const;

  Vocab vocab_;
  BpeOptions opt_;
  std::optional<int32_t> unk_id_;
  std::unique_ptr<MergeTable> merges_;
  std::unique_ptr<Cache> cache_;
  // Ids of single code points below kDirect, when no prefix/suffix applies.
  static constexpr char32_t kDirect = 0x3400;
  std::vector<int32_t> direct_;
  bool use_direct_ = false;
  int32_t byte_ids_[256];  // "<0xAB>" tokens for byte_fallback, -1 if absent
  bool segment_at_metaspace_ = false;
};

}  // namespace zotune::tok
