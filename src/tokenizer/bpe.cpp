#include "tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <mutex>

#include "tokenizer/check.h"
#include "tokenizer/utf8.h"

namespace zotune::tok {

namespace {
constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581, SentencePiece's space
bool follows_metaspace(std::string_view s, std::size_t pos) {
  return pos >= kMetaspace.size() && s.substr(pos - kMetaspace.size(), kMetaspace.size()) == kMetaspace;
}
}  // namespace

// Open-addressing map (left id, right id) -> (rank, merged id). The merge
// lookup is the inner loop of BPE; a flat table costs one probe into one
// array instead of a bucket and a node pointer chase.
struct BpeModel::MergeTable {
  struct Slot {
    uint64_t key = kEmpty;
    uint32_t rank = 0;
    int32_t merged = 0;
  };
  static constexpr uint64_t kEmpty = ~0ULL;
  std::vector<Slot> slots;
  uint64_t mask = 0;

  explicit MergeTable(std::size_t n) {
    std::size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots.resize(cap);
    mask = cap - 1;
  }
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static uint64_t hash(uint64_t k) { return (k * 0x9E3779B97F4A7C15ULL) >> 20; }
  // A later duplicate replaces the earlier one, as HF's HashMap collect does.
  void insert(int32_t a, int32_t b, uint32_t rank, int32_t merged) {
    const uint64_t k = key(a, b);
    for (uint64_t i = hash(k) & mask;; i = (i + 1) & mask) {
      if (slots[i].key == kEmpty || slots[i].key == k) {
        slots[i] = {k, rank, merged};
        return;
      }
    }
  }
  const Slot* find(int32_t a, int32_t b) const {
    const uint64_t k = key(a, b);
    for (uint64_t i = hash(k) & mask;; i = (i + 1) & mask) {
      if (slots[i].key == k) return &slots[i];
      if (slots[i].key == kEmpty) return nullptr;
    }
  }
};

// Word -> ids cache, sharded so that threads encoding at once rarely meet on
// one mutex. Each shard is simply cleared when full: real text is Zipfian, so
// the frequent words come straight back.
class BpeModel::Cache {
 public:
  static constexpr std::size_t kMaxWordBytes = 256;
  bool get(std::string_view word, std::vector<int32_t>& out) {
    const std::size_t h = StringHash{}(word);
    Shard& s = shards_[h % kShards];
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(word);
    if (it == s.map.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }
  void put(std::string_view word, const int32_t* ids, std::size_t n) {
    const std::size_t h = StringHash{}(word);
    Shard& s = shards_[h % kShards];
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.map.size() >= kShardCapacity) s.map.clear();
    s.map.emplace(std::string(word), std::vector<int32_t>(ids, ids + n));
  }

 private:
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kShardCapacity = 8192;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
  };
  std::array<Shard, kShards> shards_;
};

BpeModel::BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::string& where)
    : vocab_(std::move(vocab)), opt_(std::move(options)), cache_(std::make_unique<Cache>()) {
  if (opt_.unk_token) {
    unk_id_ = vocab_.find(*opt_.unk_token);
    // HF only fails when the unknown token is needed; failing at load is clearer.
    ZOTUNE_TOK_CHECK(unk_id_.has_value(), where, ": unk_token '", *opt_.unk_token, "' is not in the vocabulary");
  }
  merges_ = std::make_unique<MergeTable>(merges.size());
  const std::size_t prefix_len = opt_.continuing_subword_prefix.size();
  std::string merged;
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto a_id = vocab_.find(a);
    auto b_id = vocab_.find(b);
    if (!a_id || !b_id)
      fail(where, ": merges[", rank, "] (\"", a, " ", b, "\") names token '", !a_id ? a : b,
           "', which is not in the vocabulary");
    merged = a;
    merged.append(b, std::min(prefix_len, b.size()), std::string::npos);
    auto m_id = vocab_.find(merged);
    if (!m_id)
      fail(where, ": merges[", rank, "] (\"", a, " ", b, "\") makes token '", merged,
           "', which is not in the vocabulary");
    merges_->insert(*a_id, *b_id, static_cast<uint32_t>(rank), *m_id);
  }
  use_direct_ = opt_.continuing_subword_prefix.empty() && opt_.end_of_word_suffix.empty();
  if (use_direct_) {
    direct_.assign(kDirect, -1);
    std::string ch;
    for (char32_t c = 0; c < kDirect; ++c) {
      if (c >= 0xD800 && c < 0xE000) continue;
      ch.clear();
      append_utf8(ch, c);
      if (auto id = vocab_.find(ch)) direct_[c] = *id;
    }
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto id = vocab_.find(name);
    byte_ids_[b] = id ? *id : -1;
  }
  // SentencePiece-style pipelines (LLaMA-2's legacy tokenizer.json) have no
  // pre-tokenizer, so the whole text is one word and BPE on it is slow and
  // uncacheable. If no token holds a "▁" after another character, no merge
  // can cross such a position, and cutting the word there gives the same ids.
  segment_at_metaspace_ = vocab_.find(kMetaspace).has_value() && !opt_.ignore_merges && use_direct_;
  for (int32_t id = 0; segment_at_metaspace_ && id <= vocab_.max_id(); ++id) {
    const std::string* t = vocab_.token(id);
    if (!t) continue;
    for (std::size_t pos = t->find(kMetaspace, 1); pos != std::string::npos; pos = t->find(kMetaspace, pos + 1)) {
      if (!follows_metaspace(*t, pos)) {
        segment_at_metaspace_ = false;
        break;
      }
    }
  }
}

BpeModel::~BpeModel() = default;

int32_t BpeModel::char_id(std::string_view ch, bool first, bool last) const {
  if (use_direct_) {
    std::size_t i = 0;
    const char32_t c = next_code_point(ch, i);
    if (c < kDirect) return direct_[c];
    auto id = vocab_.find(ch);
    return id ? *id : -1;
  }
  std::string s;
  if (!first) s += opt_.continuing_subword_prefix;
  s += ch;
  if (last) s += opt_.end_of_word_suffix;
  auto id = vocab_.find(s);
  return id ? *id : -1;
}

namespace {

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool alive;
};

struct Candidate {
  uint32_t rank;
  int32_t pos;
  int32_t merged;
  // The std heap functions keep the largest on top; we want the lowest rank, then the leftmost.
  bool operator<(const Candidate& o) const {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

}  // namespace

void BpeModel::tokenize_uncached(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (opt_.ignore_merges) {
    if (auto id = vocab_.find(word)) {
      out.push_back(*id);
      return;
    }
  }
  thread_local std::vector<Symbol> sym;
  sym.clear();
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(sym.size());
    sym.push_back({id, n - 1, n + 1, true});
  };
  // Pending unknown run (fused when fuse_unk), flushed before the next known
  // character; byte-fallback pieces do not flush it, matching HF's order.
  bool unk_pending = false;
  for (std::size_t i = 0; i < word.size();) {
    const std::size_t len = static_cast<std::size_t>(utf8_len(static_cast<unsigned char>(word[i])));
    const std::string_view ch = word.substr(i, len);
    const int32_t id = char_id(ch, i == 0, i + len == word.size());
    i += len;
    if (id >= 0) {
      if (unk_pending) add(*unk_id_);
      unk_pending = false;
      add(id);
      continue;
    }
    if (opt_.byte_fallback) {
      bool ok = true;
      for (char b : ch) ok = ok && byte_ids_[static_cast<unsigned char>(b)] >= 0;
      if (ok) {
        for (char b : ch) add(byte_ids_[static_cast<unsigned char>(b)]);
        continue;
      }
    }
    if (unk_id_) {
      if (unk_pending && !opt_.fuse_unk) add(*unk_id_);
      unk_pending = true;
    }
  }
  if (unk_pending) add(*unk_id_);
  if (sym.empty()) return;
  sym.back().next = -1;

  thread_local std::vector<Candidate> heap;
  heap.clear();
  auto push = [](const Candidate& c) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end());
  };
  for (std::size_t i = 0; i + 1 < sym.size(); ++i) {
    if (const auto* m = merges_->find(sym[i].id, sym[i + 1].id))
      heap.push_back({m->rank, static_cast<int32_t>(i), m->merged});
  }
  std::make_heap(heap.begin(), heap.end());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = sym[static_cast<std::size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[static_cast<std::size_t>(left.next)];
    // Stale candidate: one side has merged since it was queued.
    const auto* now = merges_->find(left.id, right.id);
    if (!now || now->merged != top.merged) continue;
    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[static_cast<std::size_t>(right.next)].prev = top.pos;
    if (left.prev >= 0) {
      const Symbol& p = sym[static_cast<std::size_t>(left.prev)];
      if (const auto* m = merges_->find(p.id, left.id)) push({m->rank, left.prev, m->merged});
    }
    if (left.next >= 0) {
      const Symbol& n = sym[static_cast<std::size_t>(left.next)];
      if (const auto* m = merges_->find(left.id, n.id)) push({m->rank, top.pos, m->merged});
    }
  }
  for (const Symbol& s : sym)
    if (s.alive) out.push_back(s.id);
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (!segment_at_metaspace_) {
    tokenize_segment(word, out);
    return;
  }
  std::size_t begin = 0;
  for (std::size_t pos = word.find(kMetaspace, 1); pos != std::string_view::npos;
       pos = word.find(kMetaspace, pos + kMetaspace.size())) {
    if (follows_metaspace(word, pos)) continue;  // inside a run of "▁"
    tokenize_segment(word.substr(begin, pos - begin), out);
    begin = pos;
  }
  tokenize_segment(word.substr(begin), out);
}

void BpeModel::tokenize_segment(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() > Cache::kMaxWordBytes) {
    tokenize_uncached(word, out);
    return;
  }
  if (cache_->get(word, out)) return;
  const std::size_t before = out.size();
  tokenize_uncached(word, out);
  cache_->put(word, out.data() + before, out.size() - before);
}

}  // namespace zotune::tok
