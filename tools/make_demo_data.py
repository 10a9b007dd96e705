#!/usr/bin/env python3
"""Writes examples/sentiment/{train,eval}.jsonl: the built-in demo task of the
README's main job. A small synthetic sentiment task in MeZO's SST-2 format
(classification over the label words " terrible" / " great"). Sentences are
drawn from fixed word lists and end with the word that carries the sentiment,
right where the label word is predicted: a task a randomly initialised tiny
model can learn by zeroth-order steps within a minute (MeZO's own template,
"<sentence> It was", needs a pretrained model to route the sentiment through
attention). Eval sentences use the same words in unseen combinations.
Deterministic: rerunning gives identical files.

    python3 tools/make_demo_data.py
"""
import json
import os
import random

POSITIVE = ["wonderful", "brilliant", "delightful", "moving", "superb", "charming", "gripping", "beautiful",
            "funny", "clever", "touching", "excellent", "fresh", "joyful", "stunning", "warm"]
NEGATIVE = ["boring", "awful", "dull", "tedious", "clumsy", "lifeless", "painful", "bland",
            "messy", "weak", "stale", "dreadful", "flat", "tiresome", "ugly", "cold"]
SUBJECTS = ["The film", "This movie", "The story", "The acting", "The script", "The ending", "The music",
            "The cast", "The plot", "The director's work"]
TEMPLATES = [
    "{s} was {a}",
    "{s} is {b} and {a}",
    "{s} felt {a}",
    "I found {s_lower} {a}",
    "A {b}, {a}",
    "{s} turned out {a}",
    "{s} was, in a word, {a}",
]
LABEL_WORDS = [" terrible", " great"]  # label 0 = negative, 1 = positive (MeZO's SST-2 verbalizer)


def example(rng):
    label = rng.randrange(2)
    words = POSITIVE if label else NEGATIVE
    a, b = rng.sample(words, 2)
    s = rng.choice(SUBJECTS)
    sentence = rng.choice(TEMPLATES).format(s=s, s_lower=s[0].lower() + s[1:], a=a, b=b)
    return {"prompt": sentence, "candidates": LABEL_WORDS, "label": label}


def write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "examples", "sentiment")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(2305)
    seen = set()
    train, evals = [], []
    while len(train) < 512:
        e = example(rng)
        if e["prompt"] not in seen:
            seen.add(e["prompt"])
            train.append(e)
    while len(evals) < 128:
        e = example(rng)
        if e["prompt"] not in seen:
            seen.add(e["prompt"])
            evals.append(e)
    write(os.path.join(out, "train.jsonl"), train)
    write(os.path.join(out, "eval.jsonl"), evals)


if __name__ == "__main__":
    main()
