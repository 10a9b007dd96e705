#include "tokenizer/tokenizer.h"

#include "base/error.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/utf8.h"

namespace zotune {

Tokenizer Tokenizer::load(const std::filesystem::path& dir) { return Tokenizer(tok::load_pipeline(dir)); }

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const tok::Pipeline& p = *p_;
  if (const std::size_t bad = tok::find_invalid_utf8(text); bad != std::string_view::npos)
    fail("tokenizer: input text is not valid UTF-8 (byte ", bad, " of ", text.size(), ")");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);

  auto model = [&](std::string_view word, bool) { p.model->tokenize(word, ids); };
  auto pre_tokenize = [&](std::string_view piece, bool at_start) {
    if (p.pre_tokenizer) p.pre_tokenizer->split(piece, at_start, model);
    else model(piece, at_start);
  };
  // HF order: cut out normalized=false added tokens from the raw text,
  // normalize what is left piece by piece, cut out normalized=true added
  // tokens from that, then pre-tokenize and run the model.
  std::string normalized;
  auto normalize = [&](std::string_view piece, std::size_t offset, int32_t id) {
    if (id >= 0) {
      ids.push_back(id);
      return;
    }
    std::string_view s = piece;
    if (p.normalizer) {
      normalized.assign(piece);
      p.normalizer->normalize(normalized);
      s = normalized;
    }
    p.added.split_normalized(s, [&](std::string_view sub, std::size_t sub_offset, int32_t sub_id) {
      if (sub_id >= 0) ids.push_back(sub_id);
      else pre_tokenize(sub, offset == 0 && sub_offset == 0);
    });
  };
  p.added.split_raw(text, normalize);
  if (add_special_tokens && p.post_processor) p.post_processor->process(ids);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const tok::Pipeline& p = *p_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const tok::AddedToken* a = p.added.by_id(id)) {
      if (!(skip_special_tokens && a->special)) tokens.push_back(a->content);
    } else if (const std::string* t = p.model->vocab().token(id)) {
      tokens.push_back(*t);
    } else {
      fail("tokenizer: cannot decode id ", id, ": no token has this id (vocab size ", p.vocab_size, ")");
    }
  }
  if (p.decoder) p.decoder->decode_chain(tokens);
  std::string out;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0 && !p.decoder) out += ' ';
    out += tokens[i];
  }
  return out;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const tok::AddedToken* a = p_->added.by_content(token)) return a->id;
  return p_->model->vocab().find(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (const tok::AddedToken* a = p_->added.by_id(id)) return a->content;
  if (const std::string* t = p_->model->vocab().token(id)) return *t;
  fail("tokenizer: no token has id ", id, " (vocab size ", p_->vocab_size, ")");
}

bool Tokenizer::is_special(int32_t id) const {
  const tok::AddedToken* a = p_->added.by_id(id);
  return a && a->special;
}

int64_t Tokenizer::vocab_size() const { return p_->vocab_size; }
std::optional<int32_t> Tokenizer::bos_id() const { return p_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return p_->eos; }
std::optional<int32_t> Tokenizer::pad_id() const { return p_->pad; }
std::optional<int32_t> Tokenizer::unk_id() const { return p_->unk; }
bool Tokenizer::clean_up_tokenization_spaces() const { return p_->clean_up_spaces; }
const std::vector<std::filesystem::path>& Tokenizer::files() const { return p_->files; }

std::string Tokenizer::clean_up_tokenization(std::string text) {
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"},   {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"},
  };
  for (const auto& [from, to] : kRules) {
    std::string out;
    std::size_t prev = 0;
    for (std::size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, prev)) {
      out.append(text, prev, pos - prev);
      out += to;
      prev = pos + from.size();
    }
    out.append(text, prev, std::string::npos);
    text = std::move(out);
  }
  return text;
}

}  // namespace zotune
