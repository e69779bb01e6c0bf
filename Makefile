PY ?= .venv/bin/python
PIP ?= $(PY) -m pip
RUNS ?= $(HOME)/colorize-runs

.PHONY: setup test-programs demo test test-slow lint train export-trt bench serve clean gpu-check

.venv/bin/python:
	python3 -m venv .venv

setup: .venv/bin/python
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[train,dev,serve,cluster]'

# Colorize scikit-image's sample photos (converted to gray) with the shipped default model.
demo: setup
	$(PY) scripts/sample_photos.py build/demo
	$(dir $(PY))colorize-rt build/demo/gray -o build/demo/colorized --side-by-side
	@echo "results: build/demo/colorized/ (gray | colour)"

serve: setup
	$(dir $(PY))colorize-rt serve --ui gradio

# Redis, Chromium and chromedriver for the real-component tests: installed with apt-get where possible,
# otherwise one line names what is missing and those tests skip with that reason.
test-programs:
	@scripts/install_test_programs.sh

# The suite CI runs (about 10 minutes on 2 cores); the heavier end-to-end checks marked `slow` (bundled
# films, 49 MP uploads, Ray clusters losing a node, 64 MP tiling, the benchmarks end to end) are
# `make test-slow` (about 6 more minutes).
test: setup lint test-programs
	$(PY) -m pytest -q -m "not slow"

test-slow: setup test-programs
	$(PY) -m pytest -q -m slow

# ruff's rules and the project's line length (pyproject.toml [tool.ruff]); format is checked, never applied.
lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

CONFIG ?= configs/quicktrain.yaml
RUN ?= $(RUNS)/$(basename $(notdir $(CONFIG)))
train: setup  # continues $(RUN) when it already holds a run (colorize-train refuses to start over one)
	$(PY) -m colorize_rt.training.train --config $(CONFIG) --out $(RUN) $$(test -f $(RUN)/last.pt && echo --resume)

# Full benchmark (< 15 min on a 2-core CPU; results in benchmarks/results/<machine-tag>/). BENCH_ARGS=--quick: < 2 min.
bench: setup
	$(PY) -m benchmarks.bench $(BENCH_ARGS)

# export -> fp16 -> INT8 calibration -> TensorRT engines for the default model (build/export/).
# Without TensorRT or an NVIDIA GPU it stops after the ONNX artefacts (exit 0).
CKPT ?= $(RUNS)/quicktrain/best.pt
EXPORT_DIR ?= build/export
CALIB_DATA ?= ../shared/data/colorize-train/train
EVAL_DATA ?= ../shared/data/colorize-train/val
TRT_PROFILE ?= rtx3060-6gb
BIN = $(dir $(PY))

export-trt:
	@test -f "$(CKPT)" || { echo "error: no checkpoint at $(CKPT): run 'make train' or pass CKPT=path/to/best.pt"; exit 2; }
	$(BIN)colorize-export "$(CKPT)" -o $(EXPORT_DIR)/model.onnx
	$(BIN)colorize-export "$(CKPT)" -o $(EXPORT_DIR)/model.fp16.onnx --precision fp16 --val "$(EVAL_DATA)"
	$(BIN)colorize-calibrate $(EXPORT_DIR)/model.onnx --data "$(CALIB_DATA)" --eval "$(EVAL_DATA)" -o $(EXPORT_DIR)/model.int8.onnx --no-progress
	@if $(PY) -c "import tensorrt" 2>/dev/null && command -v nvidia-smi >/dev/null 2>&1; then \
	  for m in model model.fp16 model.int8; do \
	    $(BIN)colorize-engine $(EXPORT_DIR)/$$m.onnx --profile $(TRT_PROFILE) || exit 1; \
	  done; \
	else \
	  echo "TensorRT or an NVIDIA GPU is missing: stopping after the ONNX artefacts in $(EXPORT_DIR)/ (install tensorrt on a machine with an NVIDIA GPU, then rerun 'make export-trt')"; \
	fi

# On a machine with an NVIDIA GPU and CUDA PyTorch (cuda-python for the buffer step, TensorRT optional):
# fp16 AMP training smoke + resume, the TensorRT runner's cuda-python path, PyTorch fp16 latency, and
# TensorRT build/run/compare where TensorRT exists. < 8 min; results in benchmarks/results/gpu/<gpu>/.
gpu-check:
	PY=$(PY) benchmarks/gpu_check.sh

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
