#!/usr/bin/env bash
# Export, quantize and evaluate the shipped models from trained checkpoints, then install them into
# colorize_rt/assets/. Reproduces what the model card reports.
#   scripts/ship_default.sh CLASS_CKPT L2_CKPT [TRAIN_DIR] [VAL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
CLS=${1:?classification checkpoint}; L2=${2:?L2 checkpoint}
TRAIN=${3:-../shared/data/colorize-train/train}; VAL=${4:-../shared/data/colorize-train/val}
BIN=.venv/bin; OUT=build/ship; ASSETS=colorize_rt/assets
mkdir -p "$OUT" "$ASSETS"

$BIN/colorize-export "$CLS" -o "$OUT/default.fp32.onnx"                  # full fp32: the calibration source
$BIN/colorize-export "$CLS" -o "$OUT/default.onnx" --store-fp16          # shipped: fp16-stored weights, fp32 compute
$BIN/colorize-export "$L2" -o "$OUT/default-l2.onnx" --store-fp16
scripts/ship_int8.sh "$OUT/default.fp32.onnx" "$TRAIN" "$VAL"      # CPU INT8 + gate + probe + speed record

$BIN/colorize-eval --data "$VAL" --json "$OUT/eval.json" \
  --model "$OUT/default-l2.onnx" --model "$OUT/default.fp32.onnx" --model "$OUT/default.onnx" \
  --model "$OUT/default-int8.onnx" | tee "$OUT/eval.txt"

cp "$OUT/default.onnx" "$OUT/default-int8.onnx" "$OUT/default-l2.onnx" "$ASSETS/"
du -ch "$ASSETS"/*.onnx
