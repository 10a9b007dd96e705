#include "tokenizer/vocab.h"

namespace zotune::tok {

void Vocab::add(std::string token, int32_t id) {
  auto [it, inserted] = to_id_.insert_or_assign(std::move(token), id);
  if (static_cast<std::size_t>(id) >= to_token_.size()) to_token_.resize(static_cast<std::size_t>(id) + 1, nullptr);
  to_token_[static_cast<std::size_t>(id)] = &it->first;
}

}  // namespace zotune::tok
