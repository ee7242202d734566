#!/usr/bin/env python3
"""Averages the weights of IVT models fine-tuned from one start (a "model soup", Wortsman et al.
2022) into one model of the same architecture (demo model, stage 5; models/demo/README.md).

Runs that start from the same weights and differ in learning rate, data order or augmentation
tend to end in one basin of the loss, where the average of their weights is at least as good as
each of them and costs nothing at inference. Check the average on a validation split before
using it: runs that drifted apart (from different starts) do not average.

    python3 scripts/average_models.py OUT_DIR MODEL_DIR MODEL_DIR [MODEL_DIR ...]

Every MODEL_DIR holds config.json and model.safetensors (an `ivt train` checkpoint such as
runs/x/best, or an `ivt convert` output); the configs must agree. Needs numpy and safetensors
(pip install numpy safetensors). Writes config.json and an f32 model.safetensors, the form
`ivt convert` and `ivt train --init` read.
"""
import json
import os
import shutil
import sys

import numpy as np
from safetensors.numpy import load_file, save_file


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, srcs = sys.argv[1], sys.argv[2:]
    configs = [json.load(open(os.path.join(s, "config.json"))) for s in srcs]
    if any(c != configs[0] for c in configs[1:]):
        sys.exit("average_models: the models' config.json files differ")
    models = [load_file(os.path.join(s, "model.safetensors")) for s in srcs]
    keys = set(models[0])
    for s, m in zip(srcs[1:], models[1:]):
        if set(m) != keys:
            sys.exit(f"average_models: {s} holds other tensors than {srcs[0]}")
    avg = {}
    for k in sorted(keys):
        shapes = {m[k].shape for m in models}
        if len(shapes) != 1:
            sys.exit(f"average_models: {k} has different shapes {sorted(shapes)}")
        # Sum in f64 so the order of the models does not change the f32 result.
        avg[k] = (sum(m[k].astype(np.float64) for m in models) / len(models)).astype(np.float32)
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "model.safetensors.tmp")
    save_file(avg, tmp)
    os.replace(tmp, os.path.join(out, "model.safetensors"))
    shutil.copyfile(os.path.join(srcs[0], "config.json"), os.path.join(out, "config.json"))
    print(json.dumps({"out": out, "models": srcs, "tensors": len(avg)}))


if __name__ == "__main__":
    main()
