// Question-answering metrics as MeZO reports them (its metrics.py, which is the
// official SQuAD v1.1 evaluation script's logic): answers are normalised by
// lower-casing (Python's str.lower()), deleting ASCII punctuation
// (string.punctuation), replacing the words "a", "an", "the" (regex
// \b(a|an|the)\b with Python's Unicode word characters) by a space and
// collapsing whitespace (str.split()); exact match compares normalised strings,
// F1 the bags of normalised words; both take the max over the gold answers.
// MeZO's special case of a first gold "CANNOTANSWER" / "no answer" (QuAC) is
// not applied: SQuAD v1.1 and DROP have no such answers.
#pragma once
#include <span>
#include <string>
#include <string_view>

namespace zotune {

std::string normalize_answer(std::string_view s);  // input must be valid UTF-8
double exact_match(std::string_view prediction, std::string_view gold);
double token_f1(std::string_view prediction, std::string_view gold);
// Max over golds; 0 if there are none.
double max_exact_match(std::string_view prediction, std::span<const std::string> golds);
double max_f1(std::string_view prediction, std::span<const std::string> golds);

}  // namespace zotune
