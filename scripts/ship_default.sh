#!/usr/bin/env bash
# Export, quantize and evaluate the shipped models from trained checkpoints, then install them into
# colorize_rt/assets/. Reproduces what the model card reports.
#   scripts/ship_default.sh CLASS_CKPT [L2_CKPT|-] [TRAIN_DIR] [VAL_DIR]
# Without an L2 checkpoint (or with "-") the shipped default-l2.onnx is kept and evaluated as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
CLS=${1:?classification checkpoint}; L2=${2:--}
TRAIN=${3:-../shared/data/colorize-train/train}; VAL=${4:-../shared/data/colorize-train/val}
PRIOR=${PRIOR:-../shared/reference/prior_probs_imagenet_candidate.npy}  # the paper's rebalancing weights, if present
BIN=.venv/bin; OUT=build/ship; ASSETS=colorize_rt/assets
mkdir -p "$OUT" "$ASSETS"

$BIN/colorize-export "$CLS" -o "$OUT/default.fp32.onnx"                  # full fp32: the calibration source
$BIN/colorize-export "$CLS" -o "$OUT/default.onnx" --store-fp16          # shipped: fp16-stored weights, fp32 compute
if [ "$L2" = "-" ]; then
  cp "$ASSETS/default-l2.onnx" "$OUT/default-l2.onnx"
else
  $BIN/colorize-export "$L2" -o "$OUT/default-l2.onnx" --store-fp16
fi
scripts/ship_int8.sh "$OUT/default.fp32.onnx" "$TRAIN" "$VAL"      # CPU INT8 + gate + probe + speed record

PRIOR_ARGS=(); [ -f "$PRIOR" ] && PRIOR_ARGS=(--prior "$PRIOR")
$BIN/colorize-eval --data "$VAL" --json "$OUT/eval.json" "${PRIOR_ARGS[@]}" \
  --model "$OUT/default-l2.onnx" --model "$OUT/default.fp32.onnx" --model "$OUT/default.onnx" \
  --model "$OUT/default-int8.onnx" | tee "$OUT/eval.txt"

for f in default.onnx default-l2.onnx; do                           # atomic installs (default-int8: ship_int8.sh)
  cp "$OUT/$f" "$ASSETS/.$f.tmp" && mv -f "$ASSETS/.$f.tmp" "$ASSETS/$f"
done
du -ch "$ASSETS"/*.onnx
