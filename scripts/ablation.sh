#!/usr/bin/env bash
# MLA / BMM ablation on the synthetic benchmark (README, "Synthetic benchmark and demo model").
#
# Four runs with the same data, architecture (models/demo/config.json), seed and budget:
#   baseline  CMPM, sentence level only (the three views all paired with the sentence), no BMM
#   +MLA      sentence / phrase / attribute-word texts
#   +BMM      token dropping (ratio 0.3), sentence level only
#   +MLA+BMM  both (IVT)
# Each row is evaluated on the synthetic test split with `ivt eval` (exact search).
#
#   scripts/ablation.sh   # env: IVT=target/release/ivt OUT=target/ablation IDENTITIES=400 EPOCHS=4
#                         #      DEVICE=cpu|cuda PARALLEL=0|1 (the four rows at once, for a GPU)
#                         #      TRAIN_TIMEOUT=seconds (a safety net: a row stopped by it is
#                         #      evaluated at its last finished epoch, and says so in its log)
set -euo pipefail

IVT=${IVT:-target/release/ivt}
OUT=${OUT:-target/ablation}
EPOCHS=${EPOCHS:-4}
IDENTITIES=${IDENTITIES:-400}
SEED=${SEED:-42}
DEVICE=${DEVICE:-cpu}
PARALLEL=${PARALLEL:-0}
WORKERS=${WORKERS:-1}
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-}

if [[ ! -x "$IVT" ]]; then
  echo "build first: cargo build --release (or set IVT=path/to/ivt)" >&2
  exit 2
fi
mkdir -p "$OUT"
"$IVT" synth --out "$OUT/data" --identities "$IDENTITIES" --images-per-identity 4 \
  --test-identities $((IDENTITIES / 4)) --val-identities $((IDENTITIES / 20)) --seed 1 >&2

declare -A FLAGS=(
  [baseline]="--no-mla --mask-ratio 0"
  [mla]="--mask-ratio 0"
  [bmm]="--no-mla --mask-ratio 0.3"
  [mla-bmm]="--mask-ratio 0.3"
)
run_row() {
  local row=$1
  echo "== $row" >&2
  local limit=()
  [[ -n "$TRAIN_TIMEOUT" ]] && limit=(timeout "$TRAIN_TIMEOUT")
  # shellcheck disable=SC2086 # FLAGS holds several flags
  "${limit[@]}" "$IVT" train --dataset "$OUT/data/reid_raw.json" --images "$OUT/data/imgs" --out "$OUT/$row" \
    --config models/demo/config.json --epochs "$EPOCHS" --batch-size 32 --optimizer adamw \
    --lr 0.001 --warmup-epochs 0 --drop-path 0 --embed-dropout 0 --eval-every 0 \
    --workers "$WORKERS" --device "$DEVICE" --seed "$SEED" ${FLAGS[$row]} \
    > "$OUT/$row.train.jsonl" 2> "$OUT/$row.train.log" \
    || { [[ $? == 124 ]] && echo "$row: stopped by TRAIN_TIMEOUT" | tee -a "$OUT/$row.train.log" >&2; }
  "$IVT" eval --model "$OUT/$row/last" --dataset "$OUT/data/reid_raw.json" \
    --images "$OUT/data/imgs" --split test --device "$DEVICE" --out "$OUT/$row.metrics.json" \
    > /dev/null 2>> "$OUT/$row.train.log"
}

pids=()
for row in baseline mla bmm mla-bmm; do
  if [[ "$PARALLEL" == 1 ]]; then
    run_row "$row" &
    pids+=($!)
  else
    run_row "$row"
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done

# One JSON line per row on stdout.
for row in baseline mla bmm mla-bmm; do
  printf '{"row":"%s","metrics":%s}\n' "$row" "$(tr -d '\n ' < "$OUT/$row.metrics.json")"
done
