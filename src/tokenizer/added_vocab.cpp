#include "tokenizer/added_vocab.h"

#include <algorithm>
#include <cstring>

#include "tokenizer/utf8.h"

namespace zotune::tok {

void TokenTrie::insert(std::string_view pattern, int32_t value) {
  if (pattern.empty()) return;
  first_byte_[static_cast<unsigned char>(pattern[0])] = true;
  std::size_t node = 0;
  for (char ch : pattern) {
    const auto b = static_cast<unsigned char>(ch);
    auto& kids = nodes_[node].children;
    auto it = std::lower_bound(kids.begin(), kids.end(), b,
                               [](const auto& kid, unsigned char x) { return kid.first < x; });
    if (it != kids.end() && it->first == b) {
      node = static_cast<std::size_t>(it->second);
    } else {
      const auto next = static_cast<int32_t>(nodes_.size());
      kids.insert(it, {b, next});
      nodes_.emplace_back();
      node = static_cast<std::size_t>(next);
    }
  }
  nodes_[node].value = value;
}

int32_t TokenTrie::longest_at(std::string_view text, std::size_t pos, std::size_t& len) const {
  int32_t best = -1;
  std::size_t node = 0;
  for (std::size_t i = pos; i < text.size(); ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    const auto& kids = nodes_[node].children;
    auto it = std::lower_bound(kids.begin(), kids.end(), b,
                               [](const auto& kid, unsigned char x) { return kid.first < x; });
    if (it == kids.end() || it->first != b) break;
    node = static_cast<std::size_t>(it->second);
    if (nodes_[node].value >= 0) {
      best = nodes_[node].value;
      len = i + 1 - pos;
    }
  }
  return best;
}

std::size_t TokenTrie::next_candidate(std::string_view text, std::size_t pos) const {
  while (pos < text.size() && !first_byte_[static_cast<unsigned char>(text[pos])]) ++pos;
  return pos;
}

void AddedVocab::add(AddedToken token, FunctionRef<std::string(std::string_view)> normalize) {
  if (token.content.empty()) return;  // HF ignores empty added tokens
  std::string pattern = token.normalized ? normalize(token.content) : token.content;
  if (auto it = by_content_.find(token.content); it != by_content_.end()) {
    AddedToken& old = tokens_[it->second];
    by_id_.erase(old.id);
    old = std::move(token);
    patterns_[it->second] = std::move(pattern);
    by_id_[old.id] = it->second;
    rebuild_tries();  // the old pattern must leave the trie
    return;
  }
  // A new token goes into its trie as a rebuild would insert it (in index
  // order, so a later equal pattern wins): linear in the added tokens where a
  // rebuild per token was quadratic (fuzz_tokenizer: 256 added tokens took 0.7 s
  // under ASan; 50,000 took minutes).
  const std::size_t i = tokens_.size();
  by_content_[token.content] = i;
  by_id_[token.id] = i;
  tokens_.push_back(std::move(token));
  patterns_.push_back(std::move(pattern));
  const AddedToken& t = tokens_.back();
  if (!(split_special_ && t.special)) (t.normalized ? normalized_ : raw_).insert(patterns_[i], static_cast<int32_t>(i));
}

void AddedVocab::set_split_special_tokens(bool split) {
  split_special_ = split;
  rebuild_tries();
}

void AddedVocab::rebuild_tries() {
  raw_ = TokenTrie{};
  normalized_ = TokenTrie{};
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    if (split_special_ && t.special) continue;
    (t.normalized ? normalized_ : raw_).insert(patterns_[i], static_cast<int32_t>(i));
  }
}

const AddedToken* AddedVocab::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocab::by_content(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

namespace {

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  std::size_t start;
  return is_word_char(prev_code_point(s, s.size(), start));
}

bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  std::size_t i = 0;
  return is_word_char(next_code_point(s, i));
}

}  // namespace

void AddedVocab::split(std::string_view text, const TokenTrie& trie, PieceFn out) const {
  if (trie.empty()) {
    if (!text.empty()) out(text, 0, -1);
    return;
  }
  std::size_t emitted = 0;  // end of what has been reported
  std::size_t pos = 0;
  while ((pos = trie.next_candidate(text, pos)) < text.size()) {
    std::size_t len = 0;
    const int32_t index = trie.longest_at(text, pos, len);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[static_cast<std::size_t>(index)];
    std::size_t start = pos, stop = pos + len;
    pos = stop;  // a match that is discarded below still consumes its bytes
    if (start < emitted) continue;  // inside the rstrip of the previous match
    if (tok.single_word && (ends_with_word(text.substr(0, start)) || starts_with_word(text.substr(stop))))
      continue;
    if (tok.lstrip) {
      while (start > emitted) {
        std::size_t cp_start;
        if (!is_unicode_whitespace(prev_code_point(text, start, cp_start))) break;
        start = cp_start;
      }
    }
    if (tok.rstrip) {
      while (stop < text.size()) {
        std::size_t next = stop;
        if (!is_unicode_whitespace(next_code_point(text, next))) break;
        stop = next;
      }
    }
    if (start > emitted) out(text.substr(emitted, start - emitted), emitted, -1);
    out(text.substr(start, stop - start), start, tok.id);
    emitted = stop;
    pos = std::max(pos, stop);
  }
  if (emitted < text.size()) out(text.substr(emitted), emitted, -1);
}

}  // namespace zotune::tok
