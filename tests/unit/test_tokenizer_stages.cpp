// The tokenizer stages on small inputs with known answers (HF's documented
// examples, Python's UTF-8 decoder), and malformed tokenizer files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/fs.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/regex.h"
#include "tokenizer/stages.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace zotune {
namespace {

using nlohmann::json;
using tok::Where;

const Where kHere{"test.json", "stage"};

std::vector<std::string> pieces(const tok::PreTokenizer& pre, std::string_view text, bool at_start = true) {
  std::vector<std::string> out;
  pre.split(text, at_start, [&](std::string_view p, bool) { out.emplace_back(p); });
  return out;
}

std::vector<std::string> decode_chain(const json& j, std::vector<std::string> tokens) {
  tok::make_decoder(j, kHere)->decode_chain(tokens);
  return tokens;
}

std::string normalize(const json& j, std::string s) {
  tok::make_normalizer(j, kHere)->normalize(s);
  return s;
}

// Expected strings are Python's bytes.decode("utf-8", "replace"), which applies
// the same maximal-subpart rule as Rust's from_utf8_lossy.
TEST(TokenizerUtf8, LossyDecodingReplacesMaximalSubparts) {
  EXPECT_EQ(tok::utf8_lossy("\xC3\x28"), "\xEF\xBF\xBD(");
  EXPECT_EQ(tok::utf8_lossy("a\xE2\x82"), "a\xEF\xBF\xBD");
  EXPECT_EQ(tok::utf8_lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(tok::utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok::utf8_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok::utf8_lossy("\xF4\x90\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok::utf8_lossy("\xE2\x82\xAC\xFF"), "\xE2\x82\xAC\xEF\xBF\xBD");
  EXPECT_EQ(tok::utf8_lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(tok::find_invalid_utf8("plain ascii text, long enough for the 8-byte path"), std::string_view::npos);
  EXPECT_EQ(tok::find_invalid_utf8("abcdefgh\xC3\xA9ok\xE2\x82"), 12u);
  EXPECT_EQ(tok::find_invalid_utf8("\xED\xA0\x80"), 0u);  // a surrogate
}

TEST(TokenizerUtf8, ByteLevelAlphabetIsGpt2s) {
  const auto& m = tok::ByteLevelMap::get();
  EXPECT_EQ(m.byte_to_utf8[static_cast<unsigned char>(' ')], "\xC4\xA0");   // Ġ = U+0120
  EXPECT_EQ(m.byte_to_utf8[static_cast<unsigned char>('\n')], "\xC4\x8A");  // Ċ = U+010A
  EXPECT_EQ(m.byte_to_utf8[static_cast<unsigned char>('A')], "A");
  EXPECT_EQ(m.byte_to_utf8[0xAD], "\xC5\x83");  // soft hyphen, the last remapped byte: U+0143
  for (int b = 0; b < 256; ++b) {
    std::size_t i = 0;
    const char32_t c = tok::next_code_point(m.byte_to_utf8[b], i);
    EXPECT_EQ(m.code_point_to_byte[c], b);
  }
}

TEST(TokenizerRegex, WhitespaceFollowsOniguruma) {
  const tok::Regex s("\\s", "test");
  auto matches = [&](std::string_view text) {
    int n = 0;
    s.for_each_match(text, [&](std::size_t b, std::size_t e) { n += e > b; });
    return n;
  };
  EXPECT_EQ(matches("\xC2\x85"), 1);      // U+0085 NEL is White_Space
  EXPECT_EQ(matches("\xE1\xA0\x8E"), 0);  // U+180E is not (PCRE2 alone would say it is)
  EXPECT_EQ(matches("\xE3\x80\x80 \t"), 3);
  EXPECT_EQ(matches("\xEF\xBB\xBF"), 0);  // U+FEFF is not (JavaScript would say it is)
  EXPECT_EQ(tok::Regex::translate("[^\\s\\p{L}]\\S"),
            "[^\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
            "\\p{L}][^\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
            "\\x{3000}]");
  EXPECT_EQ(tok::Regex::translate("\\w\\H(?mi:.)(?!x)"),
            "[\\p{L}\\p{M}\\p{Nd}\\p{Pc}][^0-9A-Fa-f](?si:.)(?!x)");
  EXPECT_EQ(tok::Regex::translate("[]\\s]"), "[]\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}"
                                             "\\x{2029}\\x{202F}\\x{205F}\\x{3000}]");
}

TEST(TokenizerRegex, RubySyntaxDifferences) {
  auto count = [](const char* pattern, std::string_view text) {
    int n = 0;
    tok::Regex(pattern, "test").for_each_match(text, [&](std::size_t b, std::size_t e) { n += e > b; });
    return n;
  };
  EXPECT_EQ(count("\\w+", "x\xC2\xB2"), 1);   // "²" (No) is not a word character in Oniguruma
  EXPECT_EQ(count("\\w", "e\xCC\x81"), 2);   // a combining mark is
  EXPECT_EQ(count("^a", "a\na"), 2);          // ^ matches after every line break
  EXPECT_EQ(count("(?m)a.b", "a\nb"), 1);     // (?m) is dot-all
  EXPECT_EQ(count("\\h+", "0xBEEF g"), 2);     // hex digits in Ruby: "0" and "BEEF"
}

TEST(TokenizerPreTokenizers, Gpt2AndLlama3Patterns) {
  auto gpt2 = tok::make_pre_tokenizer(json{{"type", "Split"}, {"pattern", {{"Regex", tok::kGpt2Pattern}}},
                                           {"behavior", "Isolated"}, {"invert", false}},
                                      kHere);
  EXPECT_EQ(pieces(*gpt2, "Hello world!  It's 2024"),
            (std::vector<std::string>{"Hello", " world", "!", " ", " It", "'s", " 2024"}));
  auto llama3 = tok::make_pre_tokenizer(json{{"type", "Split"}, {"pattern", {{"Regex", tok::kLlama3Pattern}}},
                                             {"behavior", "Isolated"}, {"invert", false}},
                                        kHere);
  EXPECT_EQ(pieces(*llama3, "I'LL pay 12345 $\n\n  x"),
            (std::vector<std::string>{"I", "'LL", " pay", " ", "123", "45", " $\n\n", " ", " x"}));
}

// The examples of HF's SplitDelimiterBehavior documentation.
TEST(TokenizerPreTokenizers, SplitBehaviors) {
  auto split = [](const char* behavior) {
    auto pre = tok::make_pre_tokenizer(
        json{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", false}}, kHere);
    return pieces(*pre, "the-final--countdown");
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(split("Removed"), (V{"the", "final", "countdown"}));
  EXPECT_EQ(split("Isolated"), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithPrevious"), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithNext"), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split("Contiguous"), (V{"the", "-", "final", "--", "countdown"}));
  auto inverted = tok::make_pre_tokenizer(
      json{{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Removed"}, {"invert", true}}, kHere);
  EXPECT_EQ(pieces(*inverted, "hi, you!"), (V{"hi", "you"}));
}

TEST(TokenizerPreTokenizers, ByteLevelAndMetaspace) {
  using V = std::vector<std::string>;
  auto bl = tok::make_pre_tokenizer(json{{"type", "ByteLevel"}, {"add_prefix_space", true}}, kHere);
  EXPECT_EQ(pieces(*bl, "Hello world"), (V{"\xC4\xA0Hello", "\xC4\xA0world"}));
  auto bl_plain = tok::make_pre_tokenizer(json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}, kHere);
  EXPECT_EQ(pieces(*bl_plain, "a b\n"), (V{"a\xC4\xA0" "b\xC4\x8A"}));

  const std::string m = "\xE2\x96\x81";  // ▁
  auto always = tok::make_pre_tokenizer(json{{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "always"}}, kHere);
  EXPECT_EQ(pieces(*always, "Hey friend!"), (V{m + "Hey", m + "friend!"}));
  EXPECT_EQ(pieces(*always, "Hey", false), (V{m + "Hey"}));
  auto first = tok::make_pre_tokenizer(
      json{{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "first"}, {"split", false}}, kHere);
  EXPECT_EQ(pieces(*first, "Hey  friend", true), (V{m + "Hey" + m + m + "friend"}));
  EXPECT_EQ(pieces(*first, "Hey", false), (V{"Hey"}));
  EXPECT_EQ(pieces(*first, " Hey", true), (V{m + "Hey"}));
  auto legacy = tok::make_pre_tokenizer(json{{"type", "Metaspace"}, {"replacement", m}, {"add_prefix_space", false}}, kHere);
  EXPECT_EQ(pieces(*legacy, "a b"), (V{"a", m + "b"}));
  auto digits = tok::make_pre_tokenizer(json{{"type", "Digits"}, {"individual_digits", true}}, kHere);
  EXPECT_EQ(pieces(*digits, "ab12c3"), (V{"ab", "1", "2", "c", "3"}));
}

TEST(TokenizerNormalizers, Forms) {
  EXPECT_EQ(normalize(json{{"type", "NFC"}}, "e\xCC\x81"), "\xC3\xA9");
  EXPECT_EQ(normalize(json{{"type", "NFD"}}, "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(normalize(json{{"type", "NFKC"}}, "\xEF\xAC\x81"), "fi");  // ﬁ ligature
  EXPECT_EQ(normalize(json{{"type", "Lowercase"}}, "HeLLo \xC3\x89"), "hello \xC3\xA9");
  EXPECT_EQ(normalize(json{{"type", "Prepend"}, {"prepend", "_"}}, "a"), "_a");
  EXPECT_EQ(normalize(json{{"type", "Prepend"}, {"prepend", "_"}}, ""), "");
  EXPECT_EQ(normalize(json{{"type", "Replace"}, {"pattern", {{"String", "  "}}}, {"content", "_"}}, "a     b"), "a__ b");
  EXPECT_EQ(normalize(json{{"type", "Replace"}, {"pattern", {{"Regex", "\\d+"}}}, {"content", "#"}}, "a1b22c"), "a#b#c");
  EXPECT_EQ(normalize(json{{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, " \t x "), "x ");
  EXPECT_EQ(normalize(json{{"type", "Sequence"},
                           {"normalizers", json::array({json{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                                                        json{{"type", "Replace"}, {"pattern", {{"String", " "}}},
                                                             {"content", "\xE2\x96\x81"}}})}},
                      "a b"),
            "\xE2\x96\x81" "a\xE2\x96\x81" "b");
}

TEST(TokenizerDecoders, Chains) {
  using V = std::vector<std::string>;
  EXPECT_EQ(decode_chain(json{{"type", "ByteFallback"}}, V{"<0x61>", "<0xE2>", "<0x82>", "<0xAC>", "b"}), (V{"a\xE2\x82\xAC", "b"}));
  EXPECT_EQ(decode_chain(json{{"type", "ByteFallback"}}, V{"<0xE2>", "<0x82>", "x", "<0xFF>"}),
            (V{"\xEF\xBF\xBD", "\xEF\xBF\xBD", "x", "\xEF\xBF\xBD"}));
  EXPECT_EQ(decode_chain(json{{"type", "Fuse"}}, V{"a", "b", "c"}), (V{"abc"}));
  EXPECT_EQ(decode_chain(json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}, V{"  a ", " b"}), (V{" a ", "b"}));
  EXPECT_EQ(decode_chain(json{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                         V{"\xE2\x96\x81" "a\xE2\x96\x81"}),
            (V{" a "}));
  const std::string m = "\xE2\x96\x81";
  EXPECT_EQ(decode_chain(json{{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "always"}},
                         V{m + "Hey", m + "friend!"}),
            (V{"Hey", " friend!"}));
  // HF drops every "▁" of the first token, not only the leading one.
  EXPECT_EQ(decode_chain(json{{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "first"}}, V{m + m + "a"}), (V{"a"}));
  EXPECT_EQ(decode_chain(json{{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "never"}}, V{m + "a"}), (V{" a"}));
  // ByteLevel: tokens outside the byte alphabet pass through; invalid UTF-8 is replaced.
  EXPECT_EQ(decode_chain(json{{"type", "ByteLevel"}}, V{"\xC4\xA0Hi", "<|im_end|>", "\xC3\xA2"}), (V{" Hi<|im_end|>\xEF\xBF\xBD"}));
}

TEST(TokenizerPostProcessors, TemplateAndSequence) {
  const json tpl = json::parse(R"({"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
               {"SpecialToken": {"id": "</s>", "type_id": 0}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                       "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}})");
  std::vector<int32_t> ids{7, 8};
  tok::make_post_processor(tpl, kHere)->process(ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 7, 8, 2}));
  ids = {5};
  tok::make_post_processor(json{{"type", "Sequence"}, {"processors", json::array({json{{"type", "ByteLevel"}}, tpl})}}, kHere)
      ->process(ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 5, 2}));
  ids = {5};
  tok::make_post_processor(json{{"type", "RobertaProcessing"}, {"sep", {"</s>", 2}}, {"cls", {"<s>", 0}}}, kHere)->process(ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 5, 2}));
}

// A small tokenizer directory written by the test.
class TinyTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("zotune_tok_" + std::to_string(::getpid()) + "_" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // The 32 characters a-z, space, "<>/!." (ids 0-31), and "ab" = 32, "abc" = 33 with their merges.
  json base() const {
    json vocab = json::object();
    int id = 0;
    for (char c : std::string("abcdefghijklmnopqrstuvwxyz <>/!.")) vocab[std::string(1, c)] = id++;
    vocab["ab"] = id++;
    vocab["abc"] = id++;
    return json{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b", json::array({"ab", "c"})})}}}};
  }
  Tokenizer write_and_load(const json& j) {
    write_file_atomic(dir_ / "tokenizer.json", j.dump());
    return Tokenizer::load(dir_);
  }
  std::string error_of(const std::string& file, const std::string& content) {
    write_file_atomic(dir_ / file, content);
    try {
      Tokenizer::load(dir_);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }
  std::filesystem::path dir_;
};

TEST_F(TinyTokenizer, MergesInBothFormsAndNoDecoderJoinsWithSpaces) {
  const Tokenizer tok = write_and_load(base());
  EXPECT_EQ(tok.encode("abcab"), (std::vector<int32_t>{33, 32}));  // "abc", "ab"
  EXPECT_EQ(tok.decode(std::vector<int32_t>{33, 32}), "abc ab");   // HF joins with " " without a decoder
  EXPECT_EQ(tok.vocab_size(), 34);
}

TEST_F(TinyTokenizer, AddedTokenFlags) {
  json j = base();
  j["added_tokens"] = json::parse(R"([
    {"id": 40, "content": "<m>", "single_word": false, "lstrip": true, "rstrip": false, "normalized": false, "special": true},
    {"id": 41, "content": "<r>", "single_word": false, "lstrip": false, "rstrip": true, "normalized": false, "special": false},
    {"id": 42, "content": "cd", "single_word": true, "lstrip": false, "rstrip": false, "normalized": false, "special": false},
    {"id": 43, "content": "<mm>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}])");
  const Tokenizer tok = write_and_load(j);
  const int32_t sp = *tok.token_to_id(" "), a = *tok.token_to_id("a"), b = *tok.token_to_id("b");
  using V = std::vector<int32_t>;
  EXPECT_EQ(tok.encode("a  <m> b"), (V{a, 40, sp, b}));  // lstrip takes the spaces before
  EXPECT_EQ(tok.encode("a <r>  b"), (V{a, sp, 41, b}));  // rstrip takes the spaces after
  EXPECT_EQ(tok.encode("a cd b"), (V{a, sp, 42, sp, b}));
  EXPECT_EQ(tok.encode("acd b").size(), 5u);  // not a single word: c, d stay plain
  EXPECT_EQ(tok.encode("<mm><m>"), (V{43, 40}));  // leftmost-longest
  EXPECT_EQ(tok.vocab_size(), 44);
  EXPECT_EQ(tok.decode(V{a, 40, 43, b}, true), "a b");
  EXPECT_TRUE(tok.is_special(40));
  EXPECT_FALSE(tok.is_special(41));
}

// normalized=false tokens are found in the raw text, normalized=true ones in
// the normalized text, with their content normalized too (as HF does).
TEST_F(TinyTokenizer, NormalizedAndRawAddedTokens) {
  json j = base();
  j["normalizer"] = {{"type", "Lowercase"}};
  j["added_tokens"] = json::parse(R"([
    {"id": 40, "content": "AB!", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false},
    {"id": 41, "content": "XY", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false}])");
  const Tokenizer tok = write_and_load(j);
  const int32_t a = *tok.token_to_id("a"), b = *tok.token_to_id("b"), bang = *tok.token_to_id("!");
  using V = std::vector<int32_t>;
  EXPECT_EQ(tok.encode("AB!xY"), (V{40, 41}));
  EXPECT_EQ(tok.encode("ab!"), (V{32, bang}));  // raw match is case-sensitive: "ab" + "!"
  EXPECT_EQ(tok.encode("Ab!"), (V{32, bang}));
  EXPECT_EQ(tok.encode("aXyb"), (V{a, 41, b}));
}

TEST_F(TinyTokenizer, ByteFallbackUnkAndIgnoreMerges) {
  json j = base();
  for (int byte = 0; byte < 256; ++byte) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", byte);
    j["model"]["vocab"][name] = 100 + byte;
  }
  j["model"]["vocab"]["<unk>"] = 99;
  j["model"]["byte_fallback"] = true;
  j["model"]["unk_token"] = "<unk>";
  using V = std::vector<int32_t>;
  {
    const Tokenizer tok = write_and_load(j);
    EXPECT_EQ(tok.encode("a\xC3\xA9"), (V{0, 100 + 0xC3, 100 + 0xA9}));
  }
  j["model"]["byte_fallback"] = false;
  j["model"]["fuse_unk"] = true;
  {
    const Tokenizer tok = write_and_load(j);
    EXPECT_EQ(tok.encode("a\xC3\xA9\xC3\xA9" "b"), (V{0, 99, 1}));
  }
  j["model"]["fuse_unk"] = false;
  {
    const Tokenizer tok = write_and_load(j);
    EXPECT_EQ(tok.encode("a\xC3\xA9\xC3\xA9" "b"), (V{0, 99, 99, 1}));
  }
  // ignore_merges: a word that is itself a token is not merged up from characters.
  json k = base();
  k["model"]["vocab"]["bc"] = 50;
  k["model"]["merges"] = json::array({"b c", "a bc"});
  k["model"]["vocab"]["abc"] = 33;
  {
    const Tokenizer tok = write_and_load(k);
    EXPECT_EQ(tok.encode("abc"), (V{33}));
  }
  k["model"]["merges"] = json::array({"b c"});
  k["model"]["ignore_merges"] = true;
  {
    const Tokenizer tok = write_and_load(k);
    EXPECT_EQ(tok.encode("abc"), (V{33}));
    EXPECT_EQ(tok.encode("abcd"), (V{0, 50, 3}));
  }
}

TEST_F(TinyTokenizer, DecodeRejectsUnknownIdsAndEncodeRejectsInvalidUtf8) {
  const Tokenizer tok = write_and_load(base());
  EXPECT_THROW(tok.decode(std::vector<int32_t>{1000}), Error);
  EXPECT_THROW(tok.id_to_token(-1), Error);
  try {
    tok.encode("ok\xC3");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid UTF-8 (byte 2"), std::string::npos) << e.what();
  }
}

TEST_F(TinyTokenizer, MalformedFilesNameFileAndField) {
  const std::string file = (dir_ / "tokenizer.json").string();
  auto expect_error = [&](const std::string& content, std::vector<std::string> parts) {
    const std::string msg = error_of("tokenizer.json", content);
    parts.push_back(file);
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  };
  expect_error("{\"model\": {", {"invalid JSON"});
  json j = base();
  j["model"]["type"] = "Unigram";
  expect_error(j.dump(), {"model.type", "Unigram"});
  j = base();
  j["model"]["merges"].push_back("a zz");
  expect_error(j.dump(), {"model", "merges[2]", "'zz'"});
  j = base();
  j["model"]["merges"].push_back("c d");  // "cd" is not in the vocabulary
  expect_error(j.dump(), {"merges[2]", "'cd'"});
  j = base();
  j["model"]["merges"].push_back("a b c");
  expect_error(j.dump(), {"model.merges[2]", "two tokens"});
  j = base();
  j["model"]["vocab"]["x"] = "seven";
  expect_error(j.dump(), {"model.vocab.x", "token id"});
  j = base();
  j["normalizer"] = {{"type", "Precompiled"}};
  expect_error(j.dump(), {"normalizer.type", "Precompiled"});
  j = base();
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({json{{"type", "Split"},
                        {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}, {"invert", false}}})}};
  expect_error(j.dump(), {"pre_tokenizer.pretokenizers[0].pattern.Regex", "(unclosed"});
  j = base();
  j["decoder"] = {{"type", "Sequence"}, {"decoders", json::array({json{{"type", "Nope"}}})}};
  expect_error(j.dump(), {"decoder.decoders[0].type", "Nope"});
  j = base();
  j["added_tokens"] = json::array({json{{"content", "<x>"}}});
  expect_error(j.dump(), {"added_tokens[0]", "'id'"});
  expect_error("{}", {"model"});
  j = base();
  j["model"]["dropout"] = 0.1;
  expect_error(j.dump(), {"model.dropout"});
}

TEST_F(TinyTokenizer, MalformedVocabAndMergesFiles) {
  write_file_atomic(dir_ / "vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  const std::string merges = (dir_ / "merges.txt").string();
  std::string msg = error_of("merges.txt", "#version: 0.2\na b\na b c\n");
  EXPECT_NE(msg.find(merges + ":3"), std::string::npos) << msg;
  msg = error_of("merges.txt", "#version: 0.2\na q\n");
  EXPECT_NE(msg.find("'q'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("vocab.json"), std::string::npos) << msg;
  msg = error_of("tokenizer_config.json", R"({"tokenizer_class": "BertTokenizer"})");
  EXPECT_NE(msg.find("tokenizer_class"), std::string::npos) << msg;
  std::filesystem::remove(dir_ / "tokenizer_config.json");
  write_file_atomic(dir_ / "merges.txt", "#version: 0.2\na b\n");
  const Tokenizer tok = Tokenizer::load(dir_);
  EXPECT_EQ(tok.encode("abab"), (std::vector<int32_t>{2, 2}));
}

TEST(TokenizerLoad, MissingDirectoryOrFiles) {
  try {
    Tokenizer::load("/nonexistent/zotune/dir");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/zotune/dir"), std::string::npos);
  }
  const auto empty = std::filesystem::temp_directory_path() / ("zotune_empty_" + std::to_string(::getpid()));
  std::filesystem::create_directories(empty);
  try {
    Tokenizer::load(empty);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tokenizer.json"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(empty);
}

TEST(TokenizerCleanUp, HfRules) {
  EXPECT_EQ(Tokenizer::clean_up_tokenization("Hello , world . I do n't know . It 's"), "Hello, world. I don't know. It's");
}

}  // namespace
}  // namespace zotune
