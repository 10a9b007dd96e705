#!/usr/bin/env python3
"""SQuAD v1.1 answer metrics, as the official evaluation script
(evaluate-v1.1.py) defines them, re-written here (python3 stdlib only) to check
zotune's C++ metrics (src/data/metrics.cpp) on the same predictions:
normalise = lower-case, drop string.punctuation, replace the words a/an/the
(regex \\b(a|an|the)\\b) by a space, collapse whitespace; exact match compares
normalised strings; F1 is over the bags of normalised words; both are the max
over the gold answers.

Reads JSON lines {"prediction": str, "answers": [str, ...]} from the file named
on the command line and prints one JSON line {"f1": x, "em": y} per input line.
"""
import json
import re
import string
import sys
from collections import Counter

PUNCTUATION = set(string.punctuation)


def normalise(text):
    text = text.lower()
    text = "".join(ch for ch in text if ch not in PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1(prediction, gold):
    p, g = normalise(prediction).split(), normalise(gold).split()
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def em(prediction, gold):
    return float(normalise(prediction) == normalise(gold))


def main(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            case = json.loads(line)
            pred, golds = case["prediction"], case["answers"]
            print(json.dumps({"f1": max(f1(pred, g) for g in golds), "em": max(em(pred, g) for g in golds)}))


if __name__ == "__main__":
    main(sys.argv[1])
