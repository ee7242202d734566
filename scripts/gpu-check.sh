#!/usr/bin/env bash
# Checks and measures a CUDA build of ivt on a machine with an NVIDIA GPU (README, "GPU"):
#   1. embeddings on CUDA against the CPU for both golden models and the demo model (f32: max
#      abs difference <= 1e-3), and bf16/f16 inference against f32 (cosine);
#   2. `ivt bench encode` for ivt-base on the GPU in f32, bf16 and f16;
#   3. `ivt bench train` for ivt-base (f32, bf16, f16 autocast) and the demo architecture.
# Results go to OUT (default target/gpu-check): one JSON file per step and summary.txt.
# PARTS selects steps (default "encode speed train").
#
#   scripts/gpu-check.sh path/to/ivt   # built with: scripts/cuda-check.sh build --release
set -uo pipefail

IVT=${1:?usage: scripts/gpu-check.sh path/to/cuda-built/ivt}
OUT=${OUT:-target/gpu-check}
SECONDS_PER_CASE=${SECONDS_PER_CASE:-2}
PARTS=${PARTS:-encode speed train}
mkdir -p "$OUT"
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
  | tee "$OUT/gpu.txt"

part() { [[ " $PARTS " == *" $1 "* ]]; }

# 1. CUDA against CPU.
part encode && {
texts=(--text "a woman in a red coat carrying a black backpack"
  --text "The man wears a white shirt, blue jeans and black shoes. He carries a phone.")
compare() { # compare.py-free: numpy is enough
  python3 - "$1" "$2" <<'PY'
import json, sys
import numpy as np
a = [json.loads(l)["embedding"] for l in open(sys.argv[1])]
b = [json.loads(l)["embedding"] for l in open(sys.argv[2])]
a, b = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
print(json.dumps({"inputs": len(a), "max_abs_diff": float(np.abs(a - b).max()),
                  "min_cosine": float(cos.min())}))
PY
}
for model in tests/fixtures/model-tiny-s12 tests/fixtures/model-tiny-s16 models/demo; do
  name=$(basename "$model")
  images=()
  for img in tests/fixtures/model-tiny-s12/image*.png tests/fixtures/preprocess/*.png; do
    images+=(--image "$img")
  done
  "$IVT" encode --model "$model" "${texts[@]}" "${images[@]}" --device cpu \
    > "$OUT/$name.cpu.jsonl" 2>> "$OUT/log.txt"
  for dtype in f32 bf16 f16; do
    "$IVT" encode --model "$model" "${texts[@]}" "${images[@]}" --device cuda --dtype "$dtype" \
      > "$OUT/$name.cuda-$dtype.jsonl" 2>> "$OUT/log.txt" \
      || { summary "encode $name cuda $dtype: FAILED (see log.txt)"; continue; }
    summary "encode $name cuda-$dtype vs cpu-f32: $(compare "$OUT/$name.cpu.jsonl" "$OUT/$name.cuda-$dtype.jsonl")"
  done
done
}

# 2. Inference speed.
part speed && for dtype in f32 bf16 f16; do
  "$IVT" bench encode --preset ivt-base --device cuda --dtype "$dtype" \
    --seconds "$SECONDS_PER_CASE" --batch-sizes 1,16,64 \
    > "$OUT/bench-encode-$dtype.json" 2>> "$OUT/log.txt" \
    || summary "bench encode $dtype: FAILED"
  summary "bench encode ivt-base $dtype: $(cat "$OUT/bench-encode-$dtype.json")"
done

# 3. Training speed.
part train && for precision in f32 bf16 f16; do
  "$IVT" bench train --preset ivt-base --device cuda --precision "$precision" --batch-size 28 \
    --steps 5 --warmup-steps 2 --workers 8 \
    > "$OUT/bench-train-ivt-base-$precision.json" 2>> "$OUT/log.txt" \
    || summary "bench train ivt-base $precision: FAILED"
  summary "bench train ivt-base $precision: $(cat "$OUT/bench-train-ivt-base-$precision.json")"
done
part train && for precision in f32 bf16; do
  "$IVT" bench train --preset demo --device cuda --precision "$precision" --batch-size 32 \
    --steps 20 --warmup-steps 3 --workers 4 \
    > "$OUT/bench-train-demo-$precision.json" 2>> "$OUT/log.txt" \
    || summary "bench train demo $precision: FAILED"
  summary "bench train demo $precision: $(cat "$OUT/bench-train-demo-$precision.json")"
done
