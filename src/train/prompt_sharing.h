// Each prompt once (issue 10): the sharing layout of a batch's sequences.
// A classification batch holds one sequence per candidate, prompt ++
// candidate; the candidates of an example share the forward of their common
// head (model/shared_prefix.h). Other objectives are not shared.
#pragma once
#include "data/batch.h"
#include "model/shared_prefix.h"

namespace zotune {

// Groups = the batch's examples; a sequence is needed up to its last scored
// row. Without sharing (another objective, or no saving): groups == 0.
PrefixLayout prompt_layout(const Batch& batch);

}  // namespace zotune
