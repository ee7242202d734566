#!/usr/bin/env python3
"""Converts the averaged-perceptron POS tagger weights of textblob-aptagger 0.2.0
(`trontagger-0.1.0.pickle`, Copyright 2013 Matthew Honnibal, MIT license) into the compact
binary file `models/pos-tagger.bin` read by `src/text/tagger.rs`.

    pip download --no-deps textblob-aptagger==0.2.0 && unzip textblob_aptagger-0.2.0-*.whl
    python3 scripts/convert_pos_tagger.py textblob_aptagger/trontagger-0.1.0.pickle models/pos-tagger.bin

Layout (little endian): b"IVTPOS1\\n"; u8 class count, classes as (u8 len, utf-8);
u32 tag-dictionary size, entries as (u8 len, utf-8 word, u8 class);
u32 feature count, features as (u16 len, utf-8 name, u8 weight count, (u8 class, i32 weight in
thousandths) per weight). The pickle's weights are rounded to 3 decimals, so thousandths are exact.
"""
import pickle
import struct
import sys


def short(b, width):
    fmt = {1: "<B", 2: "<H"}[width]
    return struct.pack(fmt, len(b)) + b


def main(src, dst):
    with open(src, "rb") as f:
        weights, tagdict, classes = pickle.load(f, encoding="latin1")
    classes = sorted(classes)
    index = {c: i for i, c in enumerate(classes)}
    out = [b"IVTPOS1\n", struct.pack("<B", len(classes))]
    out += [short(c.encode(), 1) for c in classes]
    out.append(struct.pack("<I", len(tagdict)))
    for word, tag in sorted(tagdict.items()):
        out.append(short(word.encode(), 1) + struct.pack("<B", index[tag]))
    kept = [(f, w) for f, w in sorted(weights.items()) if any(v != 0 for v in w.values())]
    out.append(struct.pack("<I", len(kept)))
    for feat, w in kept:
        items = [(index[c], round(v * 1000)) for c, v in sorted(w.items()) if v != 0]
        for c, milli in items:
            assert milli / 1000 == w[classes[c]], (feat, classes[c], w[classes[c]])
        out.append(short(feat.encode(), 2) + struct.pack("<B", len(items)))
        out += [struct.pack("<Bi", c, milli) for c, milli in items]
    with open(dst, "wb") as f:
        f.write(b"".join(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
