// Builds a Pipeline from a directory: tokenizer.json (the HF tokenizers
// format), or vocab.json + merges.txt as transformers converts them, then
// the transformers-level settings of tokenizer_config.json and
// special_tokens_map.json (special tokens, BOS/EOS, LLaMA's add_bos_token).
#include <algorithm>
#include <fstream>

#include "base/error.h"
#include "base/fs.h"
#include "tokenizer/pipeline.h"

namespace zotune::tok {

namespace fs = std::filesystem;

namespace {

std::optional<Json> read_optional_object(const fs::path& path) {
  if (!fs::exists(path)) return std::nullopt;
  Json j = read_json_file(path);
  ZOTUNE_TOK_CHECK(j.is_object(), path.string(), ": expected a JSON object at the top level");
  return j;
}

bool opt_bool(const Json& j, const char* key, bool def, const Where& where) {
  if (!j.contains(key) || j[key].is_null()) return def;
  ZOTUNE_TOK_CHECK(j[key].is_boolean(), where.at(key).str(), ": expected true or false, got ", json_excerpt(j[key]));
  return j[key].get<bool>();
}

std::optional<std::string> opt_string(const Json& j, const char* key, const Where& where) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  ZOTUNE_TOK_CHECK(j[key].is_string(), where.at(key).str(), ": expected a string, got ", json_excerpt(j[key]));
  return j[key].get<std::string>();
}

// An added token as tokenizer.json / added_tokens_decoder write it.
AddedToken parse_added_token(const Json& j, const Where& where, bool default_special) {
  ZOTUNE_TOK_CHECK(j.is_object(), where.str(), ": expected an object, got ", json_excerpt(j));
  AddedToken t;
  auto content = opt_string(j, "content", where);
  ZOTUNE_TOK_CHECK(content.has_value(), where.str(), ": missing string field 'content'");
  t.content = *content;
  t.special = opt_bool(j, "special", default_special, where);
  t.single_word = opt_bool(j, "single_word", false, where);
  t.lstrip = opt_bool(j, "lstrip", false, where);
  t.rstrip = opt_bool(j, "rstrip", false, where);
  t.normalized = opt_bool(j, "normalized", !t.special, where);
  return t;
}

int32_t parse_id(const Json& v, const Where& where) {
  ZOTUNE_TOK_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0, where.str(),
        ": expected a token id (integer >= 0), got ", json_excerpt(v));
  ZOTUNE_TOK_CHECK(v.get<int64_t>() <= kMaxTokenId, where.str(), ": token id ", json_excerpt(v),
        " is beyond zotune's limit of ", kMaxTokenId, " token ids");
  return v.get<int32_t>();
}

Vocab parse_vocab(const Json& j, const Where& where) {
  ZOTUNE_TOK_CHECK(j.is_object(), where.str(), ": expected an object {token: id}, got ",
        j.is_null() ? std::string("null") : std::string(j.type_name()));
  Vocab v;
  for (const auto& [token, id] : j.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId) parse_id(id, where.at(token));
    v.add(token, id.get<int32_t>());
  }
  return v;
}

std::pair<std::string, std::string> split_merge(std::string_view line, const Where& merges, std::size_t i) {
  const std::size_t sp = line.find(' ');
  ZOTUNE_TOK_CHECK(sp != std::string_view::npos && line.find(' ', sp + 1) == std::string_view::npos,
                   merges.at(i).str(), ": a merge must be two tokens separated by one space, got \"",
                   std::string(line), "\"");
  return {std::string(line.substr(0, sp)), std::string(line.substr(sp + 1))};
}

std::unique_ptr<BpeModel> bpe_from_json(const Json& m, const Where& where) {
  ZOTUNE_TOK_CHECK(m.is_object(), where.str(), ": expected an object");
  const std::string type = m.contains("type") ? stage_type(m, where) : (m.contains("merges") ? "BPE" : "");
  ZOTUNE_TOK_CHECK(type == "BPE", where.at("type").str(), ": unsupported model type '", type,
        "' (zotune implements the BPE model only)");
  ZOTUNE_TOK_CHECK(m.contains("vocab"), where.str(), ": missing field 'vocab'");
  ZOTUNE_TOK_CHECK(m.contains("merges") && m["merges"].is_array(), where.str(), ": missing array field 'merges'");
  Vocab vocab = parse_vocab(m["vocab"], where.at("vocab"));
  std::vector<std::pair<std::string, std::string>> merges;
  const Json& mj = m["merges"];
  const Where mw = where.at("merges");
  merges.reserve(mj.size());
  for (std::size_t i = 0; i < mj.size(); ++i) {
    const Json& e = mj[i];
    if (e.is_string()) {
      merges.push_back(split_merge(e.get_ref<const std::string&>(), mw, i));
    } else {
      ZOTUNE_TOK_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), mw.at(i).str(),
            ": expected \"a b\" or [\"a\", \"b\"], got ", json_excerpt(e));
      merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    }
  }
  if (m.contains("dropout") && !m["dropout"].is_null()) {
    ZOTUNE_TOK_CHECK(m["dropout"].is_number(), where.at("dropout").str(), ": expected a number or null");
    ZOTUNE_TOK_CHECK(m["dropout"].get<double>() == 0.0, where.at("dropout").str(),
          ": BPE dropout (random merges) is not supported; encoding must be deterministic");
  }
  BpeOptions opt;
  opt.unk_token = opt_string(m, "unk_token", where);
  opt.continuing_subword_prefix = opt_string(m, "continuing_subword_prefix", where).value_or("");
  opt.end_of_word_suffix = opt_string(m, "end_of_word_suffix", where).value_or("");
  opt.fuse_unk = opt_bool(m, "fuse_unk", false, where);
  opt.byte_fallback = opt_bool(m, "byte_fallback", false, where);
  opt.ignore_merges = opt_bool(m, "ignore_merges", false, where);
  return std::make_unique<BpeModel>(std::move(vocab), merges, std::move(opt), where.str());
}

std::unique_ptr<BpeModel> bpe_from_files(const fs::path& vocab_file, const fs::path& merges_file) {
  Vocab vocab = parse_vocab(read_json_file(vocab_file), Where{vocab_file.string(), "(top level)"});
  const std::string text = read_file(merges_file);
  std::vector<std::pair<std::string, std::string>> merges;
  std::size_t line_no = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++line_no;
    pos = end + 1;
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const std::size_t sp = line.find(' ');
    if (sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos)
      fail(merges_file.string(), ":", line_no, ": a merge must be two tokens separated by one space, got \"",
           std::string(line), "\"");
    merges.emplace_back(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)));
  }
  return std::make_unique<BpeModel>(std::move(vocab), merges, BpeOptions{},
                                    vocab_file.string() + " + " + merges_file.string());
}

// transformers' tokenizer settings: tokenizer_config.json, overridden by
// special_tokens_map.json for the special tokens (as from_pretrained does).
struct Settings {
  Json config = Json::object();
  Where config_where;
  Json specials = Json::object();  // name -> (string | AddedToken object | list)
  Where specials_where;
  std::string tokenizer_class() const {
    std::string c = config.value("tokenizer_class", std::string());
    if (c.size() > 4 && c.compare(c.size() - 4, 4, "Fast") == 0) c.resize(c.size() - 4);
    return c;
  }
};

const char* const kSpecialNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                     "pad_token", "cls_token", "mask_token"};

Settings read_settings(const fs::path& dir) {
  Settings s;
  const fs::path cfg = dir / "tokenizer_config.json", map = dir / "special_tokens_map.json";
  s.config_where = {cfg.string(), ""};
  s.specials_where = {cfg.string(), ""};
  if (auto j = read_optional_object(cfg)) s.config = std::move(*j);
  if (s.config.contains("tokenizer_class") && !s.config["tokenizer_class"].is_null())
    ZOTUNE_TOK_CHECK(s.config["tokenizer_class"].is_string(), cfg.string(), ": field 'tokenizer_class': expected a string");
  for (const char* name : kSpecialNames)
    if (s.config.contains(name)) s.specials[name] = s.config[name];
  if (s.config.contains("additional_special_tokens"))
    s.specials["additional_special_tokens"] = s.config["additional_special_tokens"];
  if (auto j = read_optional_object(map)) {
    for (const auto& [k, v] : j->items()) s.specials[k] = v;
    s.specials_where = {cfg.string() + " / " + map.string(), ""};
  }
  return s;
}

// A special token named in the settings: a string, an AddedToken object or null.
std::optional<AddedToken> settings_token(const Json& v, const Where& where) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) {
    AddedToken t;
    t.content = v.get<std::string>();
    t.special = true;
    t.normalized = false;
    return t;
  }
  AddedToken t = parse_added_token(v, where, true);
  t.special = true;
  return t;
}

bool is_llama_like(const std::string& cls) {
  return cls == "LlamaTokenizer" || cls == "CodeLlamaTokenizer" || cls == "GemmaTokenizer";
}

void build_from_tokenizer_json(Pipeline& p, const fs::path& file) {
  const Json j = read_json_file(file);
  const std::string f = file.string();
  ZOTUNE_TOK_CHECK(j.is_object(), f, ": expected a JSON object at the top level");
  ZOTUNE_TOK_CHECK(j.contains("model"), f, ": missing field 'model'");
  p.model = bpe_from_json(j["model"], Where{f, "model"});
  auto stage = [&](const char* key) -> const Json* {
    return j.contains(key) && !j[key].is_null() ? &j[key] : nullptr;
  };
  if (const Json* n = stage("normalizer")) p.normalizer = make_normalizer(*n, Where{f, "normalizer"});
  if (const Json* n = stage("pre_tokenizer")) p.pre_tokenizer = make_pre_tokenizer(*n, Where{f, "pre_tokenizer"});
  if (const Json* n = stage("post_processor")) p.post_processor = make_post_processor(*n, Where{f, "post_processor"});
  if (const Json* n = stage("decoder")) p.decoder = make_decoder(*n, Where{f, "decoder"});
  if (const Json* a = stage("added_tokens")) {
    ZOTUNE_TOK_CHECK(a->is_array(), f, ": field 'added_tokens': expected an array");
    for (std::size_t i = 0; i < a->size(); ++i) {
      const Where w{f, "added_tokens[" + std::to_string(i) + "]"};
      AddedToken t = parse_added_token((*a)[i], w, false);
      ZOTUNE_TOK_CHECK((*a)[i].contains("id"), w.str(), ": missing field 'id'");
      t.id = parse_id((*a)[i]["id"], w.at("id"));
      p.added.add(std::move(t), [&](std::string_view s) {
        std::string out(s);
        if (p.normalizer) p.normalizer->normalize(out);
        return out;
      });
    }
  }
}

void build_from_vocab_and_merges(Pipeline& p, const fs::path& dir, const Settings& s) {
  const std::string cls = s.tokenizer_class();
  const bool qwen = cls == "Qwen2Tokenizer";
  ZOTUNE_TOK_CHECK(cls.empty() || cls == "GPT2Tokenizer" || cls == "CodeGenTokenizer" || qwen, s.config_where.file,
        ": field 'tokenizer_class': '", cls,
        "' has no tokenizer.json and is not a byte-level BPE class zotune can build from vocab.json + "
        "merges.txt (GPT2Tokenizer, CodeGenTokenizer, Qwen2Tokenizer)");
  p.model = bpe_from_files(dir / "vocab.json", dir / "merges.txt");
  const bool add_prefix_space = opt_bool(s.config, "add_prefix_space", false, s.config_where);
  if (qwen) {
    p.normalizer = make_normalizer(Json{{"type", "NFC"}}, Where{"(Qwen2Tokenizer)", "normalizer"});
    p.pre_tokenizer = make_pre_tokenizer(
        Json{{"type", "Sequence"},
             {"pretokenizers",
              Json::array({Json{{"type", "Split"}, {"pattern", {{"Regex", kQwen2Pattern}}}, {"behavior", "Isolated"},
                                {"invert", false}},
                           Json{{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"use_regex", false}}})}},
        Where{"(Qwen2Tokenizer)", "pre_tokenizer"});
  } else {
    p.pre_tokenizer = make_byte_level_pre_tokenizer(add_prefix_space, true);
  }
  p.decoder = make_byte_level_decoder();
  const fs::path added = dir / "added_tokens.json";
  if (auto j = read_optional_object(added)) {
    for (const auto& [content, id] : j->items()) {
      AddedToken t;
      t.content = content;
      t.id = parse_id(id, Where{added.string(), content});
      p.added.add(std::move(t), [](std::string_view v) { return std::string(v); });
    }
  }
}

void add_tokens_from_settings(Pipeline& p, const Settings& s) {
  auto normalize = [&](std::string_view v) {
    std::string out(v);
    if (p.normalizer) p.normalizer->normalize(out);
    return out;
  };
  int64_t next_id = std::max<int64_t>(p.model->vocab().max_id(), -1) + 1;
  for (const AddedToken& t : p.added.tokens()) next_id = std::max<int64_t>(next_id, t.id + 1);
  auto add_if_missing = [&](AddedToken t) {
    if (p.added.by_content(t.content)) return;
    if (auto id = p.model->vocab().find(t.content)) {
      t.id = *id;
    } else if (t.id < 0) {
      t.id = static_cast<int32_t>(next_id++);
    }
    next_id = std::max<int64_t>(next_id, t.id + 1);
    p.added.add(std::move(t), normalize);
  };
  if (s.config.contains("added_tokens_decoder")) {
    const Json& d = s.config["added_tokens_decoder"];
    const Where w = s.config_where.at("added_tokens_decoder");
    ZOTUNE_TOK_CHECK(d.is_object(), w.str(), ": expected an object {id: token}");
    for (const auto& [key, v] : d.items()) {
      AddedToken t = parse_added_token(v, w.at(key), false);
      char* end = nullptr;
      const long id = std::strtol(key.c_str(), &end, 10);
      ZOTUNE_TOK_CHECK(!key.empty() && *end == '\0' && id >= 0 && id <= kMaxTokenId, w.str(), ": key '", key,
                       "' is not a token id (0 ..", kMaxTokenId, ")");
      t.id = static_cast<int32_t>(id);
      if (p.added.by_id(t.id)) continue;
      add_if_missing(std::move(t));
    }
  }
  for (const auto& [name, v] : s.specials.items()) {
    const Where w = s.specials_where.at(name);
    if (v.is_array()) {
      for (std::size_t i = 0; i < v.size(); ++i)
        if (auto t = settings_token(v[i], w.at(i))) add_if_missing(std::move(*t));
    } else if (auto t = settings_token(v, w)) {
      add_if_missing(std::move(*t));
    }
  }
}

std::optional<int32_t> special_id(const Pipeline& p, const Settings& s, const char* name) {
  if (!s.specials.contains(name)) return std::nullopt;
  auto t = settings_token(s.specials[name], s.specials_where.at(name));
  if (!t) return std::nullopt;
  if (const AddedToken* a = p.added.by_content(t->content)) return a->id;
  return p.model->vocab().find(t->content);
}

}  // namespace

std::shared_ptr<Pipeline> load_pipeline(const fs::path& dir) {
  ZOTUNE_TOK_CHECK(fs::is_directory(dir), "tokenizer directory '", dir.string(), "' does not exist or is not a directory");
  auto p = std::make_shared<Pipeline>();
  Settings s = read_settings(dir);
  const fs::path tj = dir / "tokenizer.json";
  if (fs::exists(tj)) {
    build_from_tokenizer_json(*p, tj);
  } else if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
    build_from_vocab_and_merges(*p, dir, s);
    // The slow tokenizer classes' own defaults for tokens the files leave unset.
    const bool qwen = s.tokenizer_class() == "Qwen2Tokenizer";
    for (const char* name : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
      const bool gpt2_default = !qwen && std::string_view(name) != "pad_token";
      const bool qwen_default = qwen && std::string_view(name) != "bos_token";
      if (!s.specials.contains(name) && (gpt2_default || qwen_default)) s.specials[name] = "<|endoftext|>";
    }
  } else {
    fail(dir.string(), ": no tokenizer.json, and no vocab.json + merges.txt pair");
  }
  add_tokens_from_settings(*p, s);
  p->bos = special_id(*p, s, "bos_token");
  p->eos = special_id(*p, s, "eos_token");
  p->pad = special_id(*p, s, "pad_token");
  p->unk = special_id(*p, s, "unk_token");
  p->clean_up_spaces = opt_bool(s.config, "clean_up_tokenization_spaces", false, s.config_where);

  // transformers' LLaMA-family classes rebuild the post-processor from
  // add_bos_token / add_eos_token instead of using the one in tokenizer.json;
  // the slow->fast GPT-2 conversion (OPT) does the same for add_bos_token.
  // Every other class keeps tokenizer.json's post-processor.
  const std::string cls = s.tokenizer_class();
  const bool has_json = fs::exists(tj);
  const bool flags_set = s.config.contains("add_bos_token") || s.config.contains("add_eos_token");
  if (is_llama_like(cls) || (!has_json && flags_set)) {
    const bool add_bos = opt_bool(s.config, "add_bos_token", is_llama_like(cls), s.config_where);
    const bool add_eos = opt_bool(s.config, "add_eos_token", false, s.config_where);
    ZOTUNE_TOK_CHECK(!add_bos || p->bos, s.config_where.file, ": add_bos_token is true but bos_token is not set");
    ZOTUNE_TOK_CHECK(!add_eos || p->eos, s.config_where.file, ": add_eos_token is true but eos_token is not set");
    std::vector<int32_t> before, after;
    if (add_bos) before.push_back(*p->bos);
    if (add_eos) after.push_back(*p->eos);
    p->post_processor = make_wrap_post_processor(std::move(before), std::move(after));
  }
  if (opt_bool(s.config, "split_special_tokens", false, s.config_where)) p->added.set_split_special_tokens(true);

  int64_t max_id = p->model->vocab().max_id();
  for (const AddedToken& t : p->added.tokens()) max_id = std::max<int64_t>(max_id, t.id);
  p->vocab_size = max_id + 1;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                           "merges.txt", "added_tokens.json", "tokenizer.model", "chat_template.jinja",
                           "chat_template.json"})
    if (fs::exists(dir / name)) p->files.push_back(dir / name);
  return p;
}

}  // namespace zotune::tok
