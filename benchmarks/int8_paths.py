"""Both x86 INT8 kernel paths, checked: ``python -m benchmarks.int8_paths {gemm,probe,accuracy} ...``.

This machine's path is whatever its CPU has; the other path is reached with the distribution's qemu-user,
which emulates a CPU without VNNI (AVX2 only) and runs the same Python + ONNX Runtime::

    apt-get install -y qemu-user
    qemu-x86_64 -cpu Haswell .venv/bin/python -m benchmarks.int8_paths gemm --path avx2
    qemu-x86_64 -cpu Haswell .venv/bin/python -m benchmarks.int8_paths probe colorize_rt/assets/default-int8.onnx
    .venv/bin/python -m benchmarks.int8_paths refs --data DIR -n 8 --short 128 -o refs.npz   # fp32, natively
    qemu-x86_64 -cpu Haswell .venv/bin/python -m benchmarks.int8_paths accuracy refs.npz MODEL.int8.onnx

(qemu's /proc/cpuinfo is the host's, so pass ``--path`` instead of trusting ``core.cpu.int8_dot_path``.)

``probe`` and ``accuracy`` take ``--backend openvino`` to run the models on OpenVINO instead of ONNX Runtime
(``kernels`` lists the convolution kernels OpenVINO compiled an INT8 model to on this (emulated) CPU)::

    qemu-x86_64 -cpu Haswell .venv/bin/python -m benchmarks.int8_paths kernels colorize_rt/assets/default-int8.onnx
    qemu-x86_64 -cpu Haswell .venv/bin/python -m benchmarks.int8_paths probe --backend openvino MODEL.int8.onnx
    qemu-x86_64 -cpu Haswell .venv/bin/python -m benchmarks.int8_paths accuracy --backend openvino refs.npz MODEL.int8.onnx

* ``gemm``: ONNX Runtime ``MatMulInteger`` (uint8 x int8 weights, full range) against ``core.int8sim`` for
  both paths; says which one ORT matched bit for bit.
* ``probe``: each model's known-answer check (``runtime.selfcheck``, no cache) on the CPU.
* ``refs`` / ``accuracy``: rebalanced AuC (``colorize-eval``'s metric) and mean / p99 |dab| of INT8 models
  against fp32 outputs saved natively (fp32 under qemu is far slower than INT8; the integer kernels are what
  differ between the paths).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def gemm(args) -> int:
    from colorize_rt.bench.peak import _matmul_model
    from colorize_rt.core.int8sim import matmul_u8s8
    from colorize_rt.runtime.backends.session import ort_session

    n = args.n
    sess = ort_session(_matmul_model(n, True, seed=3))
    a = np.random.default_rng(1).integers(0, 256, (n, n), dtype=np.uint8)
    b = np.random.default_rng(3).integers(-127, 128, size=(n, n), dtype=np.int8)
    (y,) = sess.run(["Y"], {"A": a})
    out = {p: bool(np.array_equal(y, matmul_u8s8(a, b, 128, p))) for p in ("vnni", "avx2")}
    b7 = np.clip(b, -64, 64)
    sess7 = _session_with_weights(n, b7)
    (y7,) = sess7.run(["Y"], {"A": a})
    out["7bit_weights_exact"] = bool(np.array_equal(y7, matmul_u8s8(a, b7, 128, "vnni")))
    out["expected_path"] = args.path
    print(json.dumps(out))
    return 0 if out[args.path] and out["7bit_weights_exact"] else 1


def _session_with_weights(n: int, w: np.ndarray):
    from onnx import TensorProto, helper, numpy_helper

    from colorize_rt.runtime.backends.session import ort_session

    inits = [
        numpy_helper.from_array(w, "B"),
        numpy_helper.from_array(np.array(128, np.uint8), "a_zp"),
        numpy_helper.from_array(np.array(0, np.int8), "b_zp"),
    ]
    node = helper.make_node("MatMulInteger", ["A", "B", "a_zp", "b_zp"], ["Y"])
    graph = helper.make_graph(
        [node],
        "gemm7",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)
    return ort_session(model.SerializeToString())


def _runner(model, backend: str, threads: int):
    """An (inactive) runner for ``model`` on ``backend`` (``onnxruntime`` or ``openvino``, f32 precision hint)."""
    from colorize_rt.runtime.backends.registry import make_runner

    return make_runner("cpu" if backend == "onnxruntime" else backend, model, threads)


def kernels(args) -> int:
    """OpenVINO's compiled kernels (primitive types) of each model's convolutions, counted."""
    from collections import Counter

    import openvino as ov

    core = ov.Core()
    print(f"OpenVINO {ov.get_version()} CPU capabilities: {core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}")
    for m in args.models:
        compiled = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": "1"})
        seen = Counter()
        for op in compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if "layerType" in info and info["layerType"].astype(str) == "Convolution":
                seen[(info["primitiveType"].astype(str), info["runtimePrecision"].astype(str))] += 1
        print(json.dumps({"model": m, "convolutions": {f"{k} ({p})": n for (k, p), n in sorted(seen.items())}}))
    return 0


def probe(args) -> int:
    from colorize_rt.runtime.backends.selfcheck import check_runner

    bad = 0
    for m in args.models:
        t = time.perf_counter()
        with _runner(m, args.backend, args.threads) as r:
            v = check_runner(r, m, r.name, use_cache=False)
        print(f"{v.line()} | {time.perf_counter() - t:.1f} s", flush=True)
        bad += v.status == "fail"
    return 1 if bad else 0


def _subset(data: str, n: int) -> list:
    from colorize_rt.core.files import list_images

    files = list_images(data)
    step = max(1, len(files) // n)
    return files[::step][:n]


def refs(args) -> int:
    """fp32 outputs for a subset, computed natively (fp32 under qemu is far too slow)."""
    from colorize_rt.eval.predictors import onnx_predictor
    from colorize_rt.eval.scoring import iter_lab_images

    pred = onnx_predictor(args.model)
    files = _subset(args.data, args.n)
    arrays = {}
    for i, (_path, lab) in enumerate(iter_lab_images(files, args.short)):
        arrays[f"L{i}"] = lab[..., 0]
        arrays[f"ab{i}"] = pred(lab[..., 0])
    np.savez_compressed(args.output, files=np.array([str(f) for f in files]), short=np.array(args.short), **arrays)
    print(f"wrote {args.output} ({len(arrays) // 2} images, short side {args.short}, reference {args.model})")
    return 0


def accuracy(args) -> int:
    """Rebalanced AuC (colorize-eval's metric) and mean/p99 |dab| against the stored fp32 outputs."""
    from pathlib import Path

    from colorize_rt.eval.predictors import onnx_predictor
    from colorize_rt.eval.scoring import evaluate

    z = np.load(args.refs)
    files, short = [Path(f) for f in z["files"]], int(z["short"])
    stored = [(z[f"L{i}"], z[f"ab{i}"]) for i in range(sum(k.startswith("L") for k in z.files))]

    def reference(L):  # L* is recomputed here; another CPU's OpenCV/numpy may round it differently
        same = [(float(np.abs(Ls - L).mean()), ab) for Ls, ab in stored if Ls.shape == L.shape]
        err, ab = min(same, key=lambda t: t[0])
        assert err < 0.5, f"no stored fp32 output for this image (closest L* differs by {err:.2f})"
        return ab

    diffs: dict[str, list] = {}

    def tracked(name, pred):
        def run(L):
            ab = pred(L)
            diffs.setdefault(name, []).append(np.abs(ab - reference(L)).ravel())
            return ab

        return run

    preds = {"fp32": reference}
    if args.backend == "onnxruntime":
        preds |= {Path(m).name: tracked(Path(m).name, onnx_predictor(m, threads=args.threads)) for m in args.models}
    else:
        from colorize_rt.core.constants import DEFAULT_T
        from colorize_rt.runtime.backends.runners import predict_ab

        for m in args.models:
            runner = _runner(m, args.backend, args.threads).activate()
            preds[Path(m).name] = tracked(Path(m).name, lambda L, r=runner: predict_ab(r, L, DEFAULT_T))
    res = evaluate(files, preds, short_side=short, progress=False)
    out = {
        "images": res["methods"]["fp32"]["n_images"],
        "auc_rebal": {k: round(v["auc_rebal"], 3) for k, v in res["methods"].items()},
    }
    for name, d in diffs.items():
        d = np.concatenate(d)
        out[name] = {"mean_dab": round(float(d.mean()), 3), "p99_dab": round(float(np.percentile(d, 99)), 2)}
    print(json.dumps(out), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.int8_paths", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gemm")
    g.add_argument("--n", type=int, default=64)
    g.add_argument("--path", choices=("vnni", "avx2"), required=True, help="the path this (emulated) CPU should take")
    p = sub.add_parser("probe")
    p.add_argument("models", nargs="+")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backend", choices=("onnxruntime", "openvino"), default="onnxruntime")
    k = sub.add_parser("kernels")
    k.add_argument("models", nargs="+")
    r = sub.add_parser("refs")
    r.add_argument("--data", required=True)
    r.add_argument("--model", default="colorize_rt/assets/default.onnx")
    r.add_argument("-n", type=int, default=8)
    r.add_argument("--short", type=int, default=128)
    r.add_argument("-o", "--output", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("refs")
    a.add_argument("models", nargs="+")
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--backend", choices=("onnxruntime", "openvino"), default="onnxruntime")
    args = ap.parse_args(argv)
    return {"gemm": gemm, "probe": probe, "refs": refs, "accuracy": accuracy, "kernels": kernels}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
