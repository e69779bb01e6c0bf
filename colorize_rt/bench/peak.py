"""This machine's measured GEMM peak, the yardstick for "achieved GFLOP/s as a fraction of peak".

fp32: numpy ``float32 @`` (the BLAS numpy links) and ONNX Runtime ``MatMul`` (MLAS), best of both.
int8: ONNX Runtime ``MatMulInteger`` with uint8 activations × int8 constant weights (MLAS u8s8 kernels,
the ones the INT8 Q/DQ convolutions use). Square M = N = K; best (minimum) time of ``repeats``; one
multiply-accumulate counts as 2 operations.
"""

from __future__ import annotations

import time

import numpy as np

from ..core.lazy import require


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocation, weight pre-packing
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def numpy_fp32_gflops(n: int = 2048, repeats: int = 5, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return 2 * n**3 / _best_seconds(lambda: a @ b, repeats) / 1e9


def _ort_session(model_bytes: bytes, threads: int):
    from ..runtime.backends.session import ort_session

    return ort_session(model_bytes, threads=threads)


def _matmul_model(n: int, integer: bool, seed: int) -> bytes:
    require("onnx")  # actionable message when missing
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    if integer:
        w = rng.integers(-127, 128, size=(n, n), dtype=np.int8)
        inits = [
            numpy_helper.from_array(w, "B"),
            numpy_helper.from_array(np.array(128, np.uint8), "a_zp"),
            numpy_helper.from_array(np.array(0, np.int8), "b_zp"),
        ]
        node = helper.make_node("MatMulInteger", ["A", "B", "a_zp", "b_zp"], ["Y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        inits = [numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "B")]
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("A", a_type, [n, n])],
        [helper.make_tensor_value_info("Y", y_type, [n, n])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)
    return model.SerializeToString()


def ort_gflops(n: int = 2048, integer: bool = False, repeats: int = 5, threads: int = 0, seed: int = 0) -> float:
    sess = _ort_session(_matmul_model(n, integer, seed), threads)
    rng = np.random.default_rng(seed + 1)
    a = rng.integers(0, 256, size=(n, n), dtype=np.uint8) if integer else rng.standard_normal((n, n), dtype=np.float32)
    return 2 * n**3 / _best_seconds(lambda: sess.run(["Y"], {"A": a}), repeats) / 1e9


def measure_peaks(n: int = 2048, repeats: int = 5, threads: int = 0) -> dict:
    """{fp32_gflops, int8_gops, details, method}: the peaks the benchmark's fractions refer to."""
    details = {
        "numpy_fp32_gflops": numpy_fp32_gflops(n, repeats),
        "ort_matmul_fp32_gflops": ort_gflops(n, False, repeats, threads),
        "ort_matmulinteger_u8s8_gops": ort_gflops(n, True, repeats * 2, threads),
    }
    return {
        "fp32_gflops": max(details["numpy_fp32_gflops"], details["ort_matmul_fp32_gflops"]),
        "int8_gops": details["ort_matmulinteger_u8s8_gops"],
        "details": details,
        "method": (
            f"square GEMM M=N=K={n}, best of {repeats} (int8: {repeats * 2}) after a warm-up; 2 ops/MAC. "
            "fp32 peak = max(numpy float32 matmul, ONNX Runtime MatMul); "
            "int8 peak = ONNX Runtime MatMulInteger, uint8 activations x int8 constant weights (MLAS u8s8)."
        ),
    }


def best_of(first: dict, second: dict) -> dict:
    """Peaks measured before and after the comparison: the higher of each (a busy moment only lowers
    a measured peak), with both measurements kept."""
    out = dict(first)
    out["fp32_gflops"] = max(first["fp32_gflops"], second["fp32_gflops"])
    out["int8_gops"] = max(first["int8_gops"], second["int8_gops"])
    out["details"] = {"before": first["details"], "after": second["details"]}
    out["method"] = first["method"] + " Measured before and after the comparison; the higher is used."
    return out


def rescale_fractions(cases: list[dict], peaks: dict) -> None:
    """Recompute every ``fraction_of_peak`` against ``peaks`` (in place)."""
    for case in cases:
        for res in case["results"].values():
            if res.get("gflops") is not None and res.get("fraction_of_peak") is not None:
                peak = peaks["int8_gops" if res.get("precision") == "int8" else "fp32_gflops"]
                res["fraction_of_peak"] = res["gflops"] / peak
