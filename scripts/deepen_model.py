#!/usr/bin/env python3
"""Deepens a trained IVT and optionally moves it to a new input size, without changing what it
computes (demo model, stage 3; models/demo/README.md).

Each block is followed by a copy of itself whose output projections (attn.proj, mlp_vis.fc2,
mlp_txt.fc2) are zero: a pre-norm block with zero output projections adds nothing to the residual
stream, so the deeper model starts exactly where the source model was, and training grows the new
blocks from there. A new image size re-grids pos_embed and type_embed bilinearly (the class
token's entry is kept), as the authors do when the patch grid changes.

    python3 scripts/deepen_model.py SRC_MODEL_DIR OUT_DIR HEIGHT WIDTH

Needs numpy and safetensors (pip install numpy safetensors). Writes config.json and an f16
model.safetensors, the form `ivt train --init` reads.
"""
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

ZEROED = ("attn.proj.", "mlp_vis.fc2.", "mlp_txt.fc2.")


def grid(cfg):
    h, w = cfg["image_size"]
    p, s = cfg["patch_size"], cfg["stride"]
    return (h - p) // s + 1, (w - p) // s + 1


def axis(n_old, n_new):
    # Bilinear sample positions with align_corners=False, clamped at the edges.
    pos = np.clip((np.arange(n_new) + 0.5) * n_old / n_new - 0.5, 0, n_old - 1)
    lo = np.floor(pos).astype(int)
    return lo, np.minimum(lo + 1, n_old - 1), (pos - lo)


def regrid(x, old, new):
    """[1, 1 + H*W, D] -> [1, 1 + H'*W', D]."""
    cls, p = x[:, :1], x[0, 1:].reshape(old[0], old[1], -1)
    lo, hi, f = axis(old[0], new[0])
    p = p[lo] * (1 - f)[:, None, None] + p[hi] * f[:, None, None]
    lo, hi, f = axis(old[1], new[1])
    p = p[:, lo] * (1 - f)[None, :, None] + p[:, hi] * f[None, :, None]
    return np.concatenate([cls, p.reshape(1, -1, p.shape[-1])], axis=1).astype(np.float32)


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    src, dst, height, width = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cfg = json.load(open(os.path.join(src, "config.json")))
    tensors = {
        k: v.astype(np.float32)
        for k, v in load_file(os.path.join(src, "model.safetensors")).items()
    }
    out = {k: v for k, v in tensors.items() if not k.startswith("blocks.")}
    for i in range(cfg["depth"]):
        prefix = f"blocks.{i}."
        for k, v in tensors.items():
            if not k.startswith(prefix):
                continue
            rest = k[len(prefix):]
            out[f"blocks.{2 * i}.{rest}"] = v
            out[f"blocks.{2 * i + 1}.{rest}"] = (
                np.zeros_like(v) if rest.startswith(ZEROED) else v.copy()
            )
    old = grid(cfg)
    cfg["depth"] *= 2
    cfg["image_size"] = [height, width]
    new = grid(cfg)
    if new != old:
        for name in ("pos_embed", "type_embed"):
            out[name] = regrid(tensors[name], old, new)
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    save_file(
        {k: np.ascontiguousarray(v.astype(np.float16)) for k, v in out.items()},
        os.path.join(dst, "model.safetensors"),
    )
    print(json.dumps({"depth": cfg["depth"], "grid": list(new), "tensors": len(out)}))


if __name__ == "__main__":
    main()
