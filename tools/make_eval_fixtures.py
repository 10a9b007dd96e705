#!/usr/bin/env python3
"""Writes tests/data/eval/: tiny, invented examples of the eleven MeZO tasks in
every file format zotune eval reads (python3 stdlib only).

Nothing here is copied from the datasets: the texts are made up for the tests.
Each task's examples are written once as logical records and then in each
format users download, so the tests can check that every format gives the
same rendered examples:
  hf/<task>/{train,validation}.jsonl   Hugging Face datasets' JSON-lines export
  superglue/<task>/{train,val}.jsonl   SuperGLUE's official release (rte, cb,
                                       boolq, wsc, wic, multirc, copa, record)
  glue/sst2/{train,dev}.tsv            GLUE SST-2
  squad/{train,dev}-v1.1.json          SQuAD v1.1
  drop/drop_dataset_{train,dev}.json   DROP
Run from the repository root: python3 tools/make_eval_fixtures.py
"""
import json
import os

ROOT = os.path.join("tests", "data", "eval")


def write(path, text):
    path = os.path.join(ROOT, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def jsonl(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


# ---------------------------------------------------------------- sentence tasks
SST2 = {
    "train": [("a warm , funny and moving film ", 1), ("the plot goes nowhere ", 0), ("sharp , smart and alive ", 1),
              ("two hours of my life i want back ", 0), ("the cast is wonderful ", 1), ("dull and far too long ", 0)],
    "validation": [("it 's a charming , often affecting journey . ", 1), ("unflinchingly bleak and desperate ", 0),
                   ("a masterpiece of quiet tension ", 1), ("the jokes never land ", 0), ("café society at its best ", 1)],
}

RTE = {
    "train": [("The cat sat on the mat all afternoon.", "The cat was on the mat.", 0),
              ("Paris is the capital of France.", "Berlin is the capital of France.", 1),
              ("The museum opened in 1901 after years of delay.", "The museum opened in 1901.", 0),
              ("Tom bought three apples at the market.", "Tom bought no fruit.", 1),
              ("Rain fell over the hills for two days.", "It rained.", 0),
              ("The bridge was closed for repairs.", "The bridge was open to traffic.", 1)],
    "validation": [("Ana won the chess tournament in Zürich.", "Ana won a tournament.", 0),
                   ("The river froze in January.", "The river never freezes.", 1),
                   ("The company hired forty engineers last year.", "The company hired engineers.", 0),
                   ("The train left at noon.", "The train left at midnight.", 1)],
}
RTE_NAMES = ["entailment", "not_entailment"]

CB = {
    "train": [("It was a complex language. Not written down but handed down.", "the language was peeled down", 0),
              ("He said he would come, but nobody believed him.", "he would come", 2),
              ("She did not think the plan would work.", "the plan would work", 1),
              ("I know that the door is locked.", "the door is locked", 0),
              ("Maybe the shop is open today.", "the shop is open today", 2),
              ("They denied that the car was stolen.", "the car was stolen", 1)],
    "validation": [("We were sure that the bus had left.", "the bus had left", 0),
                   ("It is unclear whether the bridge will hold.", "the bridge will hold", 2),
                   ("Nobody claimed that the test was easy.", "the test was easy", 1)],
}
CB_NAMES = ["entailment", "contradiction", "neutral"]

BOOLQ = {
    "train": [("is the sun a star", "The Sun is the star at the centre of the Solar System.", True),
              ("can penguins fly", "Penguins are flightless birds of the southern hemisphere.", False),
              ("is water wet?", "Water makes things wet when it touches them.", True),
              ("does ice sink in water", "Ice is less dense than liquid water, so it floats.", False),
              ("was the tower built in 1889", "The tower was completed in 1889 for the fair.", True),
              ("is a tomato a vegetable in botany", "Botanically, a tomato is a fruit.", False)],
    "validation": [("is zürich in switzerland", "Zürich is the largest city in Switzerland.", True),
                   ("do spiders have six legs", "Spiders have eight legs.", False),
                   ("ïs the moon a planet", "The Moon is Earth's only natural satellite.", False)],
}

# (text, span1_text, span1_index, span2_text, span2_index, label)
WSC = {
    "train": [("Mark told Pete many lies about himself, which Pete included in his book. He should have been more truthful.",
               "Mark", 0, "He", 13, 1),
              ("The trophy doesn't fit into the suitcase because it is too large.", "suitcase", 6, "it", 8, 0),
              ("Joan thanked Susan for all the help she had given.", "Susan", 3, "she", 7, 1),
              ("The city council refused the demonstrators a permit because they feared violence.", "demonstrators", 4,
               "they", 9, 0),
              ("Sam pulled up a chair to the piano, but it was broken.", "chair", 4, "it", 9, 1),
              ("The man lifted the boy onto his shoulders.", "boy", 4, "his", 6, 0)],
    "validation": [("Anna did a lot better than her good friend Lucy on the test because She had studied so hard.",
                    "Anna", 0, "She", 14, 1),
                   ("The fish ate the worm. It was tasty.", "fish", 1, "It", 5, 0),
                   ("Bill passed the half-empty plate to John because he was hungry.", "John", 6, "he", 8, 1)],
}

# (word, sentence1, sentence2, label)
WIC = {
    "train": [("bank", "He sat on the bank of the river.", "She deposited cash at the bank.", 0),
              ("run", "I run every morning.", "They run five miles a day.", 1),
              ("light", "The box is light.", "Turn on the light.", 0),
              ("play", "The children play outside.", "We play in the park.", 1),
              ("bark", "The dog's bark was loud.", "The bark of the oak is rough.", 0),
              ("read", "She read the letter twice.", "He read the novel in a day.", 1)],
    "validation": [("bat", "The bat flew out of the cave.", "He swung the bat hard.", 0),
                   ("write", "Write your name here.", "Please write clearly.", 1),
                   ("café", "We met at the café.", "The café closes at six.", 1)],
}

# (premise, choice1, choice2, question, label)
COPA = {
    "train": [("My body cast a shadow over the grass.", "The sun was rising.", "The grass was cut.", "cause", 0),
              ("The man turned on the faucet.", "The toilet filled with water.", "Water flowed from the spout.", "effect", 1),
              ("I hung up the phone.", "I said goodbye.", "I dialled a number.", "cause", 0),
              ("The ice melted.", "It was cold outside.", "I left it in the sun.", "cause", 1),
              ("The girl found a bug in her cereal.", "She poured milk in the bowl.", "She lost her appetite.", "effect", 1),
              ("I was tired.", "I went to bed early.", "I drank three coffees.", "effect", 0)],
    "validation": [("The woman was in a bad mood.", "She told her friend to leave her alone.", "She gave her friend a hug.", "effect", 0),
                   ("The runner wore shorts.", "The forecast predicted high temperatures.", "She planned to run along the beach.", "cause", 0),
                   ("I studied hard for the exam.", "I got a good grade.", "I failed it.", "effect", 0)],
}

# ----------------------------------------------------------------- nested tasks
# MultiRC: passages with questions with answers (text, label).
MULTIRC = {
    "train": [("The river runs through the old town. Fishermen gather at dawn.",
               [("Where does the river run?", [("Through the old town", 1), ("Under the mountain", 0)]),
                ("When do fishermen gather?", [("At dawn", 1), ("At noon", 0)])]),
              ("Lena baked bread on Sunday. Her brother ate half of it.",
               [("Who ate the bread?", [("Her brother", 1), ("Lena's dog", 0)])])],
    "validation": [("The museum in Zürich shows old clocks. It opens at nine.",
                    [("What does the museum show?", [("Old clocks", 1), ("Paintings", 0), ("Clocks", 1)]),
                     ("When does it open?", [("At nine", 1)])])],
}

# ReCoRD: (passage with @highlight lines, entities, [(query, answers)])
RECORD = {
    "train": [("The Alpine Club met in Geneva on Monday. Members from France and Italy joined.\n@highlight\nAlpine Club meets in Geneva\n@highlight\nMembers came from France and Italy",
               ["Alpine Club", "Geneva", "France", "Italy"],
               [("The @placeholder gathering was held on Monday.", ["Alpine Club"]),
                ("Delegates travelled from @placeholder to attend.", ["France", "Italy"])]),
              ("Maria Lopez won the Boston marathon. She beat Kenji Sato by a minute.\n@highlight\nLopez wins in Boston",
               ["Maria Lopez", "Boston", "Kenji Sato", "Lopez"],
               [("@placeholder finished second in the race.", ["Kenji Sato"])])],
    "validation": [("Zoë Müller opened a bakery in Köln. Her partner Ivan Petrov runs the shop in Bonn.\n@highlight\nMüller opens bakery\n@highlight\nPetrov runs the Bonn shop",
                    ["Zoë Müller", "Köln", "Ivan Petrov", "Bonn", "Müller", "Petrov"],
                    [("The new bakery is in @placeholder.", ["Köln"]),
                     ("@placeholder opened the bakery last week.", ["Zoë Müller", "Müller"])])],
}

# SQuAD: articles (title, [(context, [(question, [answers])])])
SQUAD = {
    "train": [("Zotune", [("Zotune fine-tunes language models on CPUs. It was first written in 2026.",
                           [("What does Zotune fine-tune?", ["language models"]),
                            ("When was it first written?", ["2026"])])]),
              ("Rivers", [("The Rhine flows through six countries and ends in the North Sea.",
                           [(" Where does the Rhine end? ", ["the North Sea"])])])],
    "validation": [("Bakery", [("The bakery in Köln sells rye bread, pretzels and cakes. It opens at 7 a.m.",
                                [("What does the bakery sell?", ["rye bread, pretzels and cakes", "rye bread", "Rye bread, pretzels, and cakes"]),
                                 ("When does it open?", ["7 a.m.", "at 7 a.m.", "7 a.m."])])])],
}

# DROP: passages (id, passage, [(query_id, question, answer, validated_answers)]);
# an answer is (number, (day, month, year), spans).
NONE_DATE = ("", "", "")
DROP = {
    "train": [("nfl_1", "The Bears scored 14 points in the first half and 7 in the second. Their kicker missed twice.",
               [("q1", "How many points did the Bears score?", ("21", NONE_DATE, []), []),
                ("q2", "Who missed twice?", ("", NONE_DATE, ["their kicker"]), []),
                ("q3", "When was the game?", ("", ("3", "October", "2004"), []), [])]),
              ("hist_2", "The treaty was signed in May 1648 by Spain and the Dutch Republic.",
               [("q4", "Who signed the treaty?", ("", NONE_DATE, ["Spain", "the Dutch Republic"]), []),
                ("q5", "A question without an answer", ("", NONE_DATE, []), [])])],
    "validation": [("city_3", "Köln had 1,084,000 people in 2019, up from 1,017,000 in 2010.",
                    [("q6", "How many more people lived in Köln in 2019 than in 2010?", ("67000", NONE_DATE, []),
                      [("67000", NONE_DATE, []), ("67,000", NONE_DATE, [])]),
                     ("q7", "Which year had more people?", ("", NONE_DATE, ["2019"]),
                      [("", NONE_DATE, ["2019"]), ("", ("", "", "2019"), [])]),
                     ("q8", "In which city?", ("", NONE_DATE, ["Köln"]), [("", NONE_DATE, ["Köln"])])])],
}


def superglue_and_hf():
    for split, official in (("train", "train"), ("validation", "val")):
        # SST-2: GLUE TSV and HF JSONL.
        rows = SST2[split]
        write(f"glue/sst2/{'train' if split == 'train' else 'dev'}.tsv",
              "sentence\tlabel\n" + "".join(f"{s}\t{l}\n" for s, l in rows))
        write(f"hf/sst2/{split}.jsonl", jsonl({"sentence": s, "label": l, "idx": i} for i, (s, l) in enumerate(rows)))

        rows = RTE[split]
        write(f"hf/rte/{split}.jsonl", jsonl({"premise": p, "hypothesis": h, "idx": i, "label": l}
                                              for i, (p, h, l) in enumerate(rows)))
        write(f"superglue/rte/{official}.jsonl", jsonl({"premise": p, "hypothesis": h, "label": RTE_NAMES[l], "idx": i}
                                                        for i, (p, h, l) in enumerate(rows)))
        rows = CB[split]
        write(f"hf/cb/{split}.jsonl", jsonl({"premise": p, "hypothesis": h, "idx": i, "label": l}
                                             for i, (p, h, l) in enumerate(rows)))
        write(f"superglue/cb/{official}.jsonl", jsonl({"premise": p, "hypothesis": h, "label": CB_NAMES[l], "idx": i}
                                                       for i, (p, h, l) in enumerate(rows)))
        rows = BOOLQ[split]
        write(f"hf/boolq/{split}.jsonl", jsonl({"question": q, "answer": a, "passage": p} for q, p, a in rows))
        write(f"superglue/boolq/{official}.jsonl", jsonl({"question": q, "passage": p, "idx": i, "label": a}
                                                          for i, (q, p, a) in enumerate(rows)))
        rows = WSC[split]
        write(f"hf/wsc/{split}.jsonl", jsonl({"text": t, "span1_index": i1, "span2_index": i2, "span1_text": s1,
                                              "span2_text": s2, "idx": i, "label": l}
                                             for i, (t, s1, i1, s2, i2, l) in enumerate(rows)))
        write(f"superglue/wsc/{official}.jsonl",
              jsonl({"text": t, "target": {"span2_index": i2, "span1_index": i1, "span1_text": s1, "span2_text": s2},
                     "idx": i, "label": bool(l)} for i, (t, s1, i1, s2, i2, l) in enumerate(rows)))
        rows = WIC[split]
        write(f"hf/wic/{split}.jsonl", jsonl({"word": w, "sentence1": a, "sentence2": b, "start1": 0, "start2": 0,
                                              "end1": 1, "end2": 1, "idx": i, "label": l}
                                             for i, (w, a, b, l) in enumerate(rows)))
        write(f"superglue/wic/{official}.jsonl", jsonl({"word": w, "sentence1": a, "sentence2": b, "idx": i,
                                                        "label": bool(l), "start1": 0, "start2": 0, "end1": 1,
                                                        "end2": 1, "version": 1.1}
                                                       for i, (w, a, b, l) in enumerate(rows)))
        rows = COPA[split]
        copa = [{"premise": p, "choice1": c1, "choice2": c2, "question": q, "idx": i, "label": l}
                for i, (p, c1, c2, q, l) in enumerate(rows)]
        write(f"hf/copa/{split}.jsonl", jsonl(copa))
        write(f"superglue/copa/{official}.jsonl", jsonl(copa))

        # MultiRC: HF flattens passage > question > answer.
        flat, nested = [], []
        for p_i, (text, questions) in enumerate(MULTIRC[split]):
            qs = []
            for q_i, (q, answers) in enumerate(questions):
                ans = []
                for a_i, (a, l) in enumerate(answers):
                    flat.append({"paragraph": text, "question": q, "answer": a,
                                 "idx": {"paragraph": p_i, "question": q_i, "answer": a_i}, "label": l})
                    ans.append({"text": a, "idx": a_i, "label": l})
                qs.append({"question": q, "answers": ans, "idx": q_i})
            nested.append({"idx": p_i, "version": 1.1, "passage": {"text": text, "questions": qs}})
        write(f"hf/multirc/{split}.jsonl", jsonl(flat))
        write(f"superglue/multirc/{official}.jsonl", jsonl(nested))

        # ReCoRD: HF flattens passage > query; entities and answers sorted and de-duplicated.
        flat, nested = [], []
        for p_i, (text, entities, queries) in enumerate(RECORD[split]):
            spans = []
            for e in entities:
                start = text.index(e)
                spans.append({"start": start, "end": start + len(e) - 1})
            qas = []
            for q_i, (q, answers) in enumerate(queries):
                flat.append({"passage": text, "query": q, "entities": sorted(set(entities)),
                             "answers": sorted(set(answers)), "idx": {"passage": p_i, "query": q_i}})
                ans = []
                for a in answers:
                    start = text.index(a)
                    ans.append({"start": start, "end": start + len(a) - 1, "text": a})
                qas.append({"query": q, "answers": ans, "idx": q_i})
            nested.append({"source": "Invented", "passage": {"text": text, "entities": spans}, "qas": qas, "idx": p_i})
        write(f"hf/record/{split}.jsonl", jsonl(flat))
        write(f"superglue/record/{official}.jsonl", jsonl(nested))

        # SQuAD v1.1 JSON and HF JSONL.
        data, flat = [], []
        for title, paragraphs in SQUAD[split]:
            ps = []
            for context, qas in paragraphs:
                qs = []
                for q_i, (q, answers) in enumerate(qas):
                    qid = f"{title.lower()}{len(flat)}"
                    starts = [max(context.find(a), 0) for a in answers]
                    qs.append({"answers": [{"answer_start": s, "text": a} for s, a in zip(starts, answers)],
                               "question": q, "id": qid})
                    flat.append({"id": qid, "title": title, "context": context, "question": q,
                                 "answers": {"text": answers, "answer_start": starts}})
                ps.append({"context": context, "qas": qs})
            data.append({"title": title, "paragraphs": ps})
        write(f"squad/{'train' if split == 'train' else 'dev'}-v1.1.json",
              json.dumps({"data": data, "version": "1.1"}, ensure_ascii=False, indent=1) + "\n")
        write(f"hf/squad/{split}.jsonl", jsonl(flat))

        # DROP JSON and HF JSONL (train: "answer"; validation: "validated_answers").
        def answer_obj(a):
            number, (day, month, year), spans = a
            return {"number": number, "date": {"day": day, "month": month, "year": year}, "spans": spans}

        def hf_spans(answers):
            spans = []
            for number, date, sp in answers:
                d = " ".join(date).strip()
                if number:
                    spans.append(number)
                elif d:
                    spans.append(d)
                spans.extend(sp)
            return spans

        root, flat = {}, []
        for pid, passage, qas in DROP[split]:
            pairs = []
            for qid, q, answer, validated in qas:
                pairs.append({"question": q, "answer": answer_obj(answer), "query_id": qid,
                              "validated_answers": [answer_obj(v) for v in validated]})
                spans = hf_spans([answer] if split == "train" else validated)
                if spans:
                    flat.append({"section_id": pid, "query_id": qid, "passage": passage, "question": q,
                                 "answers_spans": {"spans": spans, "types": ["span"] * len(spans)}})
            root[pid] = {"passage": passage, "qa_pairs": pairs, "wiki_url": "none"}
        write(f"drop/drop_dataset_{'train' if split == 'train' else 'dev'}.json",
              json.dumps(root, ensure_ascii=False, indent=1) + "\n")
        write(f"hf/drop/{split}.jsonl", jsonl(flat))


if __name__ == "__main__":
    superglue_and_hf()
