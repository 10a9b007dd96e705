// Added tokens (special or not) that are cut out of the text before the model
// sees it, as HF's AddedVocabulary does: leftmost-longest matching, with
// single_word / lstrip / rstrip, and separate sets for tokens matched on the
// raw text (normalized=false) and on the normalized text (normalized=true).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/function_ref.h"

namespace zotune::tok {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
};

// Leftmost-longest matcher over a set of byte strings.
class TokenTrie {
 public:
  void insert(std::string_view pattern, int32_t value);
  bool empty() const { return nodes_.size() <= 1; }
  // Longest pattern starting at text[pos]: returns its value and sets len, or -1.
  int32_t longest_at(std::string_view text, std::size_t pos, std::size_t& len) const;
  // Smallest pos' >= pos where some pattern may start (by first byte).
  std::size_t next_candidate(std::string_view text, std::size_t pos) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int32_t value = -1;
  };
  std::vector<Node> nodes_{Node{}};
  bool first_byte_[256] = {};
};

class AddedVocab {
 public:
  // `normalize` turns a normalized=true token's content into the pattern that is
  // searched in normalized text (HF does the same).
  void add(AddedToken token, FunctionRef<std::string(std::string_view)> normalize);
  const AddedToken* by_id(int32_t id) const;
  const AddedToken* by_content(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  // HF's split_special_tokens: special tokens in the text are then encoded as
  // plain text (they still decode).
  void set_split_special_tokens(bool split);
  bool has_raw() const { return !raw_.empty(); }
  bool has_normalized() const { return !normalized_.empty(); }

  // Splits `text` into plain pieces (id = -1) and added tokens, in order.
  // Empty plain pieces are not reported. offset = start of the piece in text.
  using PieceFn = FunctionRef<void(std::string_view piece, std::size_t offset, int32_t id)>;
  void split_raw(std::string_view text, PieceFn out) const { split(text, raw_, out); }
  void split_normalized(std::string_view text, PieceFn out) const { split(text, normalized_, out); }

 private:
  void split(std::string_view text, const TokenTrie& trie, PieceFn out) const;
  void rebuild_tries();
  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;  // what is searched for each token
  bool split_special_ = false;
  std::unordered_map<int32_t, std::size_t> by_id_;
  std::unordered_map<std::string, std::size_t> by_content_;
  TokenTrie raw_, normalized_;
};

}  // namespace zotune::tok
