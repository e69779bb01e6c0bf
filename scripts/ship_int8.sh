#!/usr/bin/env bash
# Re-make the shipped CPU INT8 model (colorize_rt/assets/default-int8.onnx) from an fp32 colorize-rt ONNX.
#   scripts/ship_int8.sh [FP32_ONNX] [TRAIN_DIR] [VAL_DIR]      (FP32_ONNX default: the shipped default.onnx)
# One command, reproducible: calibration (256 training images, minmax, cached), the accuracy gate on all 262
# validation images (it covers x86 CPUs with and without VNNI: 7-bit weights cannot saturate VPMADDUBSW),
# the known-answer probe, and the CPU speed record the runtime reads (benchmarks/int8_speed.py --record).
# Target "cpu": uint8 activations (TensorRT INT8 engines are built from `colorize-calibrate --target tensorrt`).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-colorize_rt/assets/default.onnx}
TRAIN=${2:-../shared/data/colorize-train/train}; VAL=${3:-../shared/data/colorize-train/val}
BIN=.venv/bin; OUT=build/ship; ASSETS=colorize_rt/assets
mkdir -p "$OUT"

$BIN/colorize-calibrate "$SRC" --data "$TRAIN" --eval "$VAL" -o "$OUT/default-int8.onnx" --target cpu \
  --num-images 256 --eval-images 262 --method minmax --no-progress | tee "$OUT/calibration.txt"
$BIN/python -m benchmarks.int8_speed --fp32 "$SRC" --int8 "$OUT/default-int8.onnx" --record --probe-reps 0 \
  --json "$OUT/int8_speed.json"

cp "$OUT/default-int8.onnx" "$ASSETS/.default-int8.onnx.tmp" && mv -f "$ASSETS/.default-int8.onnx.tmp" "$ASSETS/default-int8.onnx"
echo "installed $ASSETS/default-int8.onnx ($(du -h "$ASSETS/default-int8.onnx" | cut -f1))"
