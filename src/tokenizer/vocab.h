// Token string <-> id table.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace zotune::tok {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// The largest token id zotune accepts: ids index tables (Vocab's id -> token),
// so an id of 2^31 - 1 in a tokenizer.json would cost 16 GB before any check
// (a fuzzer finding). Real vocabularies stay below 300,000 ids.
inline constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

class Vocab {
 public:
  // Several strings may share an id (HF allows it); id_to_token returns the last one set.
  void add(std::string token, int32_t id);
  std::optional<int32_t> find(std::string_view token) const {
    auto it = to_id_.find(token);
    if (it == to_id_.end()) return std::nullopt;
    return it->second;
  }
  // nullptr if no token has this id.
  const std::string* token(int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= to_token_.size() || !to_token_[id]) return nullptr;
    return to_token_[id];
  }
  std::size_t size() const { return to_id_.size(); }
  int64_t max_id() const { return static_cast<int64_t>(to_token_.size()) - 1; }

 private:
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> to_id_;
  std::vector<const std::string*> to_token_;
};

}  // namespace zotune::tok
