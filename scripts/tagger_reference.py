#!/usr/bin/env python3
"""Tags captions with the original textblob-aptagger 0.2.0 algorithm (PerceptronTagger.tag with
tokenize=False, its _normalize/_get_features and AveragedPerceptron.predict, copied verbatim in
spirit) to produce the reference `tests/fixtures/phrases/tagged.json` for `tests/train_phrases.rs`.

    python3 scripts/tagger_reference.py trontagger-0.1.0.pickle out.json caption-files...

Captions are tokenised like `ivt::text::tagger::tokenize`: words with inner hyphens, clitics such
as 's, and every other non-space character alone; sentences end after '.', '!' or '?'.
"""
import json
import pickle
import re
import sys
from collections import defaultdict

TOKEN = re.compile(r"'[^\W_]+|[^\W_]+(?:-[^\W_]+)*|\S")


def tokenize(text):
    sents, cur = [], []
    for tok in TOKEN.findall(text):
        cur.append(tok)
        if tok in (".", "!", "?"):
            sents.append(cur)
            cur = []
    if cur:
        sents.append(cur)
    return sents


def normalize(word):
    if "-" in word and word[0] != "-":
        return "!HYPHEN"
    if word.isdigit() and len(word) == 4:
        return "!YEAR"
    if word[0].isdigit():
        return "!DIGITS"
    return word.lower()


def features(i, word, context, prev, prev2):
    feats = defaultdict(int)

    def add(name, *args):
        feats[" ".join((name,) + tuple(args))] += 1

    i += 2
    add("bias")
    add("i suffix", word[-3:])
    add("i pref1", word[0])
    add("i-1 tag", prev)
    add("i-2 tag", prev2)
    add("i tag+i-2 tag", prev, prev2)
    add("i word", context[i])
    add("i-1 tag+i word", prev, context[i])
    add("i-1 word", context[i - 1])
    add("i-1 suffix", context[i - 1][-3:])
    add("i-2 word", context[i - 2])
    add("i+1 word", context[i + 1])
    add("i+1 suffix", context[i + 1][-3:])
    add("i+2 word", context[i + 2])
    return feats


def predict(weights, classes, feats):
    scores = defaultdict(float)
    for feat, value in feats.items():
        if feat not in weights or value == 0:
            continue
        for label, weight in weights[feat].items():
            scores[label] += value * weight
    return max(classes, key=lambda label: (scores[label], label))


def tag(model, text):
    weights, tagdict, classes = model
    prev, prev2 = "-START-", "-START2-"
    out = []
    for words in tokenize(text):
        context = ["-START-", "-START2-"] + [normalize(w) for w in words] + ["-END-", "-END2-"]
        for i, word in enumerate(words):
            t = tagdict.get(word) or predict(weights, classes, features(i, word, context, prev, prev2))
            out.append([word, t])
            prev2, prev = prev, t
    return out


def captions(path):
    data = json.load(open(path))
    return data["captions"] if isinstance(data, dict) and "captions" in data else list(data)


def main(pickle_path, out_path, *sources):
    model = pickle.load(open(pickle_path, "rb"), encoding="latin1")
    texts = [c for s in sources for c in captions(s)]
    json.dump({t: tag(model, t) for t in texts}, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
