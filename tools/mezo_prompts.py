#!/usr/bin/env python3
"""Reference prompts for zotune eval's tests (python3 stdlib only).

Renders the Hugging Face-format fixture records of tests/data/eval/hf/ with
MeZO's templates (princeton-nlp/MeZO large_models/templates.py, re-expressed
here, with Python's own str methods) and MeZO's encode_prompt() string
handling: demonstrations are verbalize(demo, gold).strip(), joined by "\\n\\n"
and strip()ped; a candidate's text is (demos + "\\n\\n" +
verbalize(x, c).strip(' ')).lstrip().strip(' '), the prompt the same with
encode(x); SFC uses encode_sfc / verbalize_sfc with .strip(' ') only.

Output (stdout), one JSON line per task and validation example:
  {"task", "id", "zero_shot": {"prompt", "candidates"}, "icl": {...},
   "sfc": {...} (classification)}
where the ICL demonstrations are the train examples DEMO_IDS, in that order.
The prompt is the text before the candidates; candidates are what follows it.
Usage: python3 tools/mezo_prompts.py > tests/golden/eval_prompts.jsonl
"""
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "eval", "hf")
DEMO_IDS = [1, 0]
SEP = "\n\n"


def read(task, split):
    with open(os.path.join(ROOT, task, split + ".jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def words(verbalizer):
    def make(enc):
        return lambda r: (enc(r), [enc(r) + w for w in verbalizer], "", list(verbalizer))
    return make


def sst2(r):
    t = r["sentence"].strip()
    names = ["terrible", "great"]
    return f"{t} It was", [f"{t} It was {n}" for n in names], " It was", [f" It was {n}" for n in names]


def copa(r):
    p = r["premise"].rstrip()
    if p.endswith("."):
        p = p[:-1]
    conj = {"effect": " so ", "cause": " because "}[r["question"]]

    def cap(c):
        w = c.split(" ")
        if w[0] != "I":
            w[0] = w[0].lower()
        return " ".join(w)
    cs = [cap(r["choice1"]), cap(r["choice2"])]
    return p + conj, [p + conj + c for c in cs], conj.strip(), [conj.strip() + " " + c for c in cs]


def boolq(r):
    q = r["question"]
    if not q.endswith("?"):
        q += "?"
    q = q[0].upper() + q[1:]
    return words(["Yes", "No"])(lambda r: f"{r['passage']} {q}\n")(r)


def record(r):
    p = r["passage"].replace("@highlight\n", "- ")
    filled = [r["query"].replace("@placeholder", e) for e in r["entities"]]
    return f"{p}\n-", [f"{p}\n- {q}" for q in filled], "-", [f"- {q}" for q in filled]


CLASSIFY = {
    "sst2": (sst2, lambda r: r["label"]),
    "rte": (words(["Yes", "No"])(lambda r: f"{r['premise']}\nDoes this mean that \"{r['hypothesis']}\" is true? Yes or No?\n"),
            lambda r: r["label"]),
    "cb": (words(["Yes", "No", "Maybe"])(lambda r: f"Suppose {r['premise']} Can we infer that \"{r['hypothesis']}\"? Yes, No, or Maybe?\n"),
           lambda r: r["label"]),
    "boolq": (boolq, lambda r: 0 if r["answer"] else 1),
    "wsc": (words(["No", "Yes"])(lambda r: f"{r['text']}\nIn the previous sentence, does the pronoun \"{r['span2_text'].lower()}\" refer to {r['span1_text']}? Yes or No?\n"),
            lambda r: r["label"]),
    "wic": (words(["No", "Yes"])(lambda r: f"Does the word \"{r['word']}\" have the same meaning in these two sentences? Yes, No?\n{r['sentence1']}\n{r['sentence2']}\n"),
            lambda r: r["label"]),
    "multirc": (words(["No", "Yes"])(lambda r: f"{r['paragraph']}\nQuestion: {r['question']}\nI found this answer \"{r['answer']}\". Is that correct? Yes or No?\n"),
                lambda r: r["label"]),
    "copa": (copa, lambda r: r["label"]),
    "record": (record, None),
}


def demo_text(task, r):
    if task == "squad":
        return f"Title: {r['title']}\nContext: {r['context']}\nQuestion: {r['question'].strip()}\nAnswer: {r['answers']['text'][0]}\n"
    if task == "drop":
        return f"Passage: {r['passage']}\nQuestion: {r['question'].strip()}\nAnswer: {r['answers_spans']['spans'][0]}\n"
    render, gold = CLASSIFY[task]
    if task == "record":
        p = r["passage"].replace("@highlight\n", "- ")
        return f"{p}\n- " + r["query"].replace("@placeholder", r["answers"][0])
    return render(r)[1][gold(r)]


def split(head, enc, verbs, lstrip=True):
    p = (head + enc.strip(" "))
    full = [(head + v.strip(" ")) for v in verbs]
    if lstrip:
        p, full = p.lstrip(), [f.lstrip() for f in full]
    full = [f.strip(" ") for f in full]
    assert all(f.startswith(p) for f in full)
    return {"prompt": p, "candidates": [f[len(p):] for f in full]}


def main():
    out = sys.stdout
    for task in ["sst2", "rte", "cb", "boolq", "wsc", "wic", "multirc", "copa", "record", "squad", "drop"]:
        train, valid = read(task, "train"), read(task, "validation")
        demos = SEP.join(demo_text(task, train[i]).strip() for i in DEMO_IDS).strip()
        for i, r in enumerate(valid):
            line = {"task": task, "id": i}
            if task in ("squad", "drop"):
                if task == "squad":
                    enc = f"Title: {r['title']}\nContext: {r['context']}\nQuestion: {r['question'].strip()}\nAnswer:"
                else:
                    enc = f"Passage: {r['passage']}\nQuestion: {r['question'].strip()}\nAnswer:"
                line["zero_shot"] = {"prompt": ("" + SEP + enc.strip(" ")).lstrip().strip(" "), "candidates": []}
                line["icl"] = {"prompt": (demos + SEP + enc.strip(" ")).lstrip().strip(" "), "candidates": []}
            else:
                enc, verbs, sfc_enc, sfc_verbs = CLASSIFY[task][0](r)
                line["zero_shot"] = split("" + SEP, enc, verbs)
                line["icl"] = split(demos + SEP, enc, verbs)
                line["sfc"] = split("", sfc_enc, sfc_verbs, lstrip=False)
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
