"""GPU check for colorize-rt (``make gpu-check`` / ``benchmarks/gpu_check.sh``): < 8 min on one GPU.

Needs PyTorch with CUDA; cuda-python for the buffer-path step; TensorRT only for the last step.
onnxruntime-gpu is not needed (the references run on ONNX Runtime's CPU provider). Each step runs in its
own subprocess with a time limit, so one failing or hanging step cannot take the others down:

1. ``train``: GPU training smoke test on generated images: fp16 autocast with a GradScaler, a
   checkpoint, then ``--resume`` to a later step (the checkpoint's step and scaler state are checked).
2. ``buffers``: the TensorRT runner's cuda-python path (cudaMalloc, async host/device copies on its own
   non-blocking stream, profile choice, stream sync) around a pure-CUDA stand-in engine (the strict fake
   TensorRT of ``tests/fake_tensorrt.py`` whose kernel is device-to-device copies on the runner's stream),
   compared with the numpy reference, bit for bit.
3. ``torch``: PyTorch fp16 (autocast) and fp32 latency of PaperNet and the shipped default model
   (mobile-lite0) at 1x256² and 4x512², timed with CUDA events on a non-default stream.
4. ``tensorrt`` (only where ``import tensorrt`` works): engines for the shipped default (fp32 ONNX and the
   INT8 Q/DQ ONNX), run through ``TrtRunner`` (its own non-default stream) and compared with ONNX Runtime
   CPU (max |Δab| at T = 0.38 and T = 1.0), with latencies.

Results: ``benchmarks/results/gpu/<gpu>/gpu_check.json`` and ``.md`` (written atomically); exit 0 when
every step that could run passed, 1 when one failed, 3 without an NVIDIA GPU / CUDA PyTorch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "colorize_rt" / "assets"
LIMITS = {"train": 120, "buffers": 40, "torch": 90, "tensorrt": 200}  # seconds: 450 in all, < 8 min with start-up
TEMPERATURES = (0.38, 1.0)


# -- steps (each runs in its own process: python -m benchmarks.gpu_check --step NAME) ----------------------
def _synthetic_images(folder: Path, n: int, size: int = 96, seed: int = 0) -> None:
    """Smooth random colour fields (chroma the network can learn something from), as PNG files."""
    import cv2

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.uniform(0, 255, (6, 6, 3)).astype(np.float32)
        img = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        img += rng.normal(0, 8, img.shape)
        cv2.imwrite(str(folder / f"img{i:03d}.png"), np.clip(img, 0, 255).astype(np.uint8))


def _train(run: Path, data: Path, steps: int, resume: bool, device: str) -> subprocess.CompletedProcess:
    amp = "fp16" if device == "cuda" else "off"
    cmd = [sys.executable, "-m", "colorize_rt.training.train", "--config", str(ROOT / "configs/smoke.yaml"), "--out", str(run)]
    cmd += ["--resume"] if resume else []
    cmd += [f"train_dir={data / 'train'}", f"val_dir={data / 'val'}", f"max_steps={steps}", f"amp={amp}"]
    cmd += [f"device={device}", "batch_size=8", "limit_images=0", "ckpt_every=3", "eval_every=6", "eval_images=4"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=LIMITS["train"] // 2)


def step_train(device: str = "cuda") -> dict:
    """fp16 AMP training smoke, checkpoint, resume."""
    import torch

    with tempfile.TemporaryDirectory(prefix="colorize-gpu-check.") as tmp:
        data, run = Path(tmp) / "data", Path(tmp) / "run"
        _synthetic_images(data / "train", 24)
        _synthetic_images(data / "val", 4, seed=1)
        t0 = time.perf_counter()
        first = _train(run, data, 6, False, device)
        ck1 = torch.load(run / "last.pt", map_location="cpu", weights_only=False) if first.returncode == 0 else {}
        second = _train(run, data, 12, True, device)
        ck2 = torch.load(run / "last.pt", map_location="cpu", weights_only=False) if second.returncode == 0 else {}
        seconds = time.perf_counter() - t0
    log = first.stdout + first.stderr + second.stdout + second.stderr
    checks = {
        "first_run_ok": first.returncode == 0,
        "checkpoint_step_6": ck1.get("step") == 6,
        "fp16_grad_scaler_saved": device != "cuda" or bool(ck1.get("scaler")),
        "resumed": "resumed from" in log and second.returncode == 0,
        "checkpoint_step_12": ck2.get("step") == 12,
        "finite_weights": bool(ck2) and all(torch.isfinite(v).all() for v in ck2["model"].values() if v.is_floating_point()),
    }
    return {"passed": all(checks.values()), "checks": checks, "seconds": round(seconds, 1), "log_tail": log[-1500:]}


def _gpu() -> dict:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    out = subprocess.run(
        [exe, "--query-gpu=name,compute_cap,memory.total,driver_version", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout.strip()
    if not out:
        return {}
    name, cc, mem, driver = (x.strip() for x in out.splitlines()[0].split(","))
    return {"gpu_name": name, "compute_capability": cc, "memory_gib": round(float(mem) / 1024, 2), "driver": driver}


def step_buffers(cudart=None) -> dict:
    """The runner's cuda-python buffer path around the pure-CUDA stand-in engine."""
    sys.path.insert(0, str(ROOT))
    from tests import fake_tensorrt

    if cudart is None:
        from colorize_rt.runtime.backends.tensorrt_runner import _cudart

        cudart = _cudart()
    sys.modules["tensorrt"] = fake_tensorrt  # the stand-in's builder and engine; cuda-python is real
    fake_tensorrt.reset(kernel="copy", cudart=cudart)
    from colorize_rt.export import tensorrt_engine as te
    from colorize_rt.runtime.backends.tensorrt_runner import TrtRunner

    gpu = _gpu() or {"gpu_name": "stand-in", "compute_capability": "0.0"}
    device = {"gpu_name": gpu["gpu_name"], "compute_capability": gpu["compute_capability"]}
    cases = [(1, 64, 96), (4, 512, 512), (1, 16, 24), (3, 256, 128)]
    results = []
    with tempfile.TemporaryDirectory(prefix="colorize-gpu-check.") as tmp:
        engine = Path(tmp) / "standin.engine"
        te.build_engine(ASSETS / "default.onnx", engine, te.card_profile("rtx3060-6gb"), device=device, log=lambda *_: None)
        with TrtRunner(engine, check_sidecar=False) as runner:
            for k, (n, h, w) in enumerate(cases):
                L = np.random.default_rng(k).uniform(0, 100, (n, 1, h, w)).astype(np.float32)
                t = 0.2 + 0.3 * k
                t0 = time.perf_counter()
                out = runner.infer({"L": L, "temperature": np.array(t, np.float32)})["ab"]
                ms = 1000 * (time.perf_counter() - t0)
                exact = bool(np.array_equal(out, fake_tensorrt.copy_kernel_reference(L, t)))
                results.append({"shape": [n, 1, h, w], "profile": runner._profile, "exact": exact, "ms": round(ms, 2)})
            stream = int(runner.stream)
    return {"passed": all(r["exact"] for r in results) and stream != 0, "cases": results, "stream_handle_nonzero": stream != 0}


def _time_cuda(fn, stream, reps: int = 20, warmup: int = 5) -> float:
    import torch

    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            fn()
            end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end))
    return float(np.median(times))


def step_torch() -> dict:
    """PyTorch fp16 (autocast) and fp32 latency of PaperNet and the default model, non-default stream."""
    import torch

    from colorize_rt.models import create_model
    from colorize_rt.models.decode import ColorizationGraph

    torch.backends.cudnn.benchmark = True
    stream = torch.cuda.Stream()
    rows = []
    for name, args in (("papernet", {}), ("mobile-lite0", {"decoder_width": 1.0, "pretrained": False})):
        graph = ColorizationGraph(create_model(name, **args)).eval().cuda()
        for shape in ((1, 1, 256, 256), (4, 1, 512, 512)):
            L = torch.full(shape, 50.0, device="cuda")
            for precision in ("fp16", "fp32"):

                def run(graph=graph, L=L, precision=precision):
                    with torch.inference_mode(), torch.autocast("cuda", torch.float16, enabled=precision == "fp16"):
                        return graph(L, 0.38)

                ms = _time_cuda(run, stream)
                rows.append({"model": name, "shape": list(shape), "precision": precision, "ms": round(ms, 3)})
        del graph
        torch.cuda.empty_cache()
    return {"passed": True, "rows": rows, "torch": torch.__version__, "cuda": torch.version.cuda}


def _trt_case(te, onnx_path: Path, engine: Path, card) -> dict:
    from colorize_rt.runtime.backends.runners import OrtRunner
    from colorize_rt.runtime.backends.tensorrt_runner import TrtRunner

    t0 = time.perf_counter()
    te.build_engine(onnx_path, engine, card, log=lambda *_: None)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    feeds = [rng.uniform(0, 100, s).astype(np.float32) for s in ((1, 1, 256, 256), (4, 1, 512, 512), (1, 1, 40, 56))]
    worst = 0.0
    with TrtRunner(engine) as trt_runner, OrtRunner(onnx_path) as ort_runner:
        for L in feeds:
            for t in TEMPERATURES:
                feed = {"L": L, "temperature": np.array(t, np.float32)}
                worst = max(worst, float(np.abs(trt_runner.infer(feed)["ab"] - ort_runner.infer(feed)["ab"]).max()))
        latency = {}
        for L in feeds[:2]:
            feed = {"L": L, "temperature": np.array(0.38, np.float32)}
            times = []
            for i in range(25):
                t1 = time.perf_counter()
                trt_runner.infer(feed)
                if i >= 5:
                    times.append(1000 * (time.perf_counter() - t1))
            latency["x".join(map(str, L.shape))] = round(float(np.median(times)), 3)
    return {"build_s": round(build_s, 1), "max_abs_dab_vs_ort_cpu": round(worst, 4), "runner_ms": latency}


def step_tensorrt() -> dict:
    """Engine build, run and comparison with ONNX Runtime CPU for the shipped default (fp32 and INT8)."""
    from colorize_rt.export import tensorrt_engine as te

    trt = te.require_tensorrt()
    gpu = _gpu()
    card = te.card_profile("custom", memory_gib=gpu["memory_gib"])
    out = {"tensorrt": trt.__version__, "models": {}}
    with tempfile.TemporaryDirectory(prefix="colorize-gpu-check.") as tmp:
        for name, tol in (("default", 1.0), ("default-int8", 6.0)):  # |Δab| sanity bounds (ab spans ±110)
            res = _trt_case(te, ASSETS / f"{name}.onnx", Path(tmp) / f"{name}.engine", card)
            res["passed"] = res["max_abs_dab_vs_ort_cpu"] <= tol
            res["tolerance"] = tol
            out["models"][name] = res
    out["passed"] = all(r["passed"] for r in out["models"].values())
    return out


STEPS = {"train": step_train, "buffers": step_buffers, "torch": step_torch, "tensorrt": step_tensorrt}


# -- orchestration -------------------------------------------------------------------------------------------
def _can_run(step: str) -> str:
    """Empty when the step can run here, else why not."""
    import importlib.util

    if step == "buffers" and not (importlib.util.find_spec("cuda") and _has_cuda_bindings()):
        return "cuda-python is not installed (pip install 'cuda-python>=12.6,<13' or the gpu-cu12/gpu-cu13 extra)"
    if step == "tensorrt" and importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (the gpu-cu12 / gpu-cu13 extra)"
    return ""


def _has_cuda_bindings() -> bool:
    try:
        from colorize_rt.runtime.backends.tensorrt_runner import _cudart

        _cudart()
    except ImportError:
        return False
    return True


def run_step(step: str, timeout: int) -> dict:
    """One step in a subprocess; its JSON result, or why it failed."""
    why = _can_run(step)
    if why:
        return {"skipped": why}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_file = Path(fh.name)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.gpu_check", "--step", step, "--result", str(result_file)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=timeout,
        )
        if proc.returncode != 0 or not result_file.stat().st_size:
            return {"passed": False, "error": (proc.stderr or proc.stdout)[-2000:]}
        result = json.loads(result_file.read_text())
    except subprocess.TimeoutExpired:
        return {"passed": False, "error": f"timed out after {timeout} s"}
    finally:
        result_file.unlink(missing_ok=True)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def _tag(gpu: dict) -> str:
    return re.sub(r"[^a-z0-9]+", "-", gpu.get("gpu_name", "unknown").lower()).strip("-")


def _markdown(report: dict) -> str:
    lines = [f"# GPU check: {report['gpu'].get('gpu_name')} (driver {report['gpu'].get('driver')})", ""]
    for step, res in report["steps"].items():
        status = "skipped: " + res["skipped"] if "skipped" in res else ("passed" if res.get("passed") else "FAILED")
        lines.append(f"- **{step}**: {status}")
    rows = report["steps"].get("torch", {}).get("rows", [])
    if rows:
        lines += ["", "| model | input | precision | ms (median, CUDA events, non-default stream) |", "|---|---|---|---|"]
        lines += [f"| {r['model']} | {'x'.join(map(str, r['shape']))} | {r['precision']} | {r['ms']:.3f} |" for r in rows]
    for name, res in report["steps"].get("tensorrt", {}).get("models", {}).items():
        lines.append(f"- TensorRT {name}: max |Δab| vs ORT CPU {res['max_abs_dab_vs_ort_cpu']}, runner ms {res['runner_ms']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    ap.add_argument("--step", choices=sorted(STEPS), help="run one step (internal; writes --result)")
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu", help="results folder")
    ap.add_argument("--only", nargs="*", choices=sorted(STEPS), help="run only these steps")
    args = ap.parse_args(argv)
    if args.step:
        args.result.write_text(json.dumps(STEPS[args.step](), default=str))
        return 0
    gpu = _gpu()
    try:
        import torch

        cuda_ok = torch.cuda.is_available()
    except ImportError:
        cuda_ok = False
    if not gpu or not cuda_ok:
        print("gpu_check: no NVIDIA GPU with CUDA PyTorch here (nvidia-smi and torch.cuda are needed): run it on the GPU machine")
        return 3
    report = {"gpu": gpu, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": {}}
    for step in args.only or list(STEPS):
        print(f"gpu_check: {step} ...", flush=True)
        report["steps"][step] = res = run_step(step, LIMITS[step])
        print(f"gpu_check: {step}: {json.dumps(res, default=str)[:600]}", flush=True)
    from colorize_rt.core.atomic import atomic_write_text

    folder = args.out / _tag(gpu)
    atomic_write_text(folder / "gpu_check.json", json.dumps(report, indent=2, default=str))
    atomic_write_text(folder / "gpu_check.md", _markdown(report))
    print(f"gpu_check: results in {folder}")
    failed = [s for s, r in report["steps"].items() if "skipped" not in r and not r.get("passed")]
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
