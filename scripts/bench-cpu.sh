#!/usr/bin/env bash
# Encoder speed on this CPU against the authors' PyTorch model, measured back to back.
#
#   scripts/bench-cpu.sh [rounds] [seconds]
#
# Each round runs the reference (../shared/tools/bench_reference.py, stride 12) and
# `ivt bench encode --preset ivt-base` in f32 and with `--dtype bf16` (in turn, which first
# alternating between rounds), at batch 1 and 16, images
# and texts (64 tokens); the table gives each case's best rate over the rounds and its ratio to
# PyTorch's best (the best rate is the one least disturbed by other processes).
# Environment: IVT (the ivt binary; default: a release build made here), REF_PYTHON
# (default /tmp/refvenv/bin/python), REF_CODE (the authors' code, default /tmp/ivtref),
# REF_SCRIPT (default ../shared/tools/bench_reference.py beside this checkout, or
# /work/shared/tools/bench_reference.py), THREADS (run both on this many threads instead of all
# cores: a check that other processes disturb less, PyTorch's OpenMP threads being the most
# sensitive to a busy machine).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
seconds=${2:-8}
ref_python=${REF_PYTHON:-/tmp/refvenv/bin/python}
ref_code=${REF_CODE:-/tmp/ivtref}
ref_script=${REF_SCRIPT:-}
for candidate in ../shared/tools/bench_reference.py /work/shared/tools/bench_reference.py; do
  if [[ -z $ref_script && -f $candidate ]]; then ref_script=$candidate; fi
done
[[ -n $ref_script ]] || { echo "bench_reference.py not found: set REF_SCRIPT" >&2; exit 1; }
if [[ -z ${IVT:-} ]]; then
  cargo build --release --locked --bin ivt >&2
  IVT=${CARGO_TARGET_DIR:-target}/release/ivt
fi
# Other processes (builds) distort PyTorch most (its OpenMP threads wait on each other): where
# allowed, both run at the highest priority.
prio=()
if nice -n -20 true 2>/dev/null; then prio=(nice -n -20); fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

{
  lscpu | sed -n 's/^Model name:\s*/cpu: /p'
  echo "flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|avx512_vnni|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "cores: $(nproc)"
} >&2
if [[ -n ${THREADS:-} ]]; then
  echo "threads: $THREADS" >&2
  export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS
fi
reference() {
  "${prio[@]}" "$ref_python" "$ref_script" "$ref_code" 12 >"$out/ref.$1" 2>/dev/null
}
ours() {
  "${prio[@]}" "$IVT" bench encode --preset ivt-base --seconds "$seconds" >"$out/f32.$1" 2>/dev/null
  "${prio[@]}" "$IVT" bench encode --preset ivt-base --seconds "$seconds" --dtype bf16 >"$out/bf16.$1" 2>/dev/null
}
# The order alternates between rounds: whatever runs first after the other runs on a machine
# still settling from it (measured: ivt's first run after PyTorch's ~15 % slower than its next).
for r in $(seq 1 "$rounds"); do
  echo "round $r: $(uptime)" >&2
  if (( r % 2 )); then reference "$r"; ours "$r"; else ours "$r"; reference "$r"; fi
done
echo "after: $(uptime)" >&2

python3 - "$out" "$rounds" <<'EOF'
import json, re, sys
out, rounds = sys.argv[1], int(sys.argv[2])
cases = [("image", 1), ("image", 16), ("text", 1), ("text", 16)]
best = {}
for r in range(1, rounds + 1):
    for line in open(f"{out}/ref.{r}"):
        m = re.match(r"(image|text) batch (\d+).*: ([\d.]+) \w+/s", line)
        if m:
            key = ("torch", m[1], int(m[2]))
            best[key] = max(best.get(key, 0.0), float(m[3]))
    for mode in ("f32", "bf16"):
        report = json.loads(open(f"{out}/{mode}.{r}").read().strip().splitlines()[-1])
        for row in report["results"]:
            key = (mode, row["input"], row["batch"])
            best[key] = max(best.get(key, 0.0), row["per_second"])
print(f"| | {' | '.join(f'{i}s/s b{b}' for i, b in cases)} |")
print("|---|" + "---:|" * len(cases))
for mode, name in (("torch", "authors' PyTorch, f32"), ("f32", "ivt f32"), ("bf16", "ivt --dtype bf16")):
    cells = []
    for i, b in cases:
        v, t = best.get((mode, i, b)), best.get(("torch", i, b))
        if v is None:
            cells.append("-")
        elif mode == "torch" or not t:
            cells.append(f"{v:.2f}")
        else:
            cells.append(f"{v:.2f} ({v / t:.2f}x)")
    print(f"| {name} | {' | '.join(cells)} |")
EOF
