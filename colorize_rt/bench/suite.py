"""The comparison phase: every (model, size, batch) case through every backend, within a time budget.

Cases run cheapest first. Before each case the cost of its minimum measurement (warm-up + ``min_runs``)
is predicted per backend from the seconds-per-GMAC seen so far; backends (or whole cases) that would
not fit the case cap or what is left of the budget are recorded as ``skipped: time budget``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from .compare import RunPolicy, pairwise, run_case
from .inputs import make_feed
from .models import BenchModel
from .runners import REFERENCE, build_backends

UNKNOWN_GMAC_PER_S = 20.0  # pessimistic rate for a backend not yet measured
RATIOS = {  # name: (slower, faster); value = slower's time / faster's time per interleaved round
    "int8_vs_torch_fp32": ("torch-fp32", "ort-int8"),
    "int8_vs_opencv_dnn": ("opencv-dnn", "ort-int8"),
    "int8_vs_ort_fp32": ("ort-fp32", "ort-int8"),
    "ort_fp32_vs_torch_fp32": ("torch-fp32", "ort-fp32"),
    "torch_bf16_vs_torch_fp32": ("torch-fp32", "torch-bf16"),
    "ov_fp32_vs_ort_fp32": ("ort-fp32", "ov-fp32"),
    "ov_int8_vs_ort_fp32": ("ort-fp32", "ov-int8"),
    "ov_bf16_vs_ort_fp32": ("ort-fp32", "ov-bf16"),
    "auto_vs_ort_fp32": ("ort-fp32", "auto"),  # goal (issue 26): >= 2 at 256² on the default
    "auto_vs_torch_fp32": ("torch-fp32", "auto"),  # goal: >= 3
    "auto_vs_opencv_dnn": ("opencv-dnn", "auto"),  # goal: >= 2
}


@dataclass
class SuiteConfig:
    sizes: tuple[int, ...] = (256, 512, 1024)
    batches: tuple[int, ...] = (1, 8)
    backends: tuple[str, ...] = ()
    budget_s: float = 540.0
    max_case_s: float = 75.0
    min_case_s: float = 4.0
    policy: RunPolicy = field(default_factory=RunPolicy)
    threads: int = 0
    photo_dir: str | None = None


def plan_cases(models: list[BenchModel], sizes, batches) -> list[tuple[BenchModel, int, int]]:
    cases = [(m, s, b) for m in models for s in sizes for b in batches]
    order = {m.name: i for i, m in enumerate(models)}
    return sorted(cases, key=lambda c: (c[0].macs(c[1], c[2]) or c[1] ** 2 * c[2], order[c[0].name]))


def predict_s(sec_per_gmac: dict[str, float], backend: str, gmac: float, n: int) -> float:
    known = list(sec_per_gmac.values())
    rate = sec_per_gmac.get(backend, max(known) * 1.5 if known else 1 / UNKNOWN_GMAC_PER_S)
    return rate * gmac * n


def run_suite(models: list[BenchModel], cfg: SuiteConfig, peaks: dict, log=print) -> list[dict]:
    start = time.perf_counter()
    cases = plan_cases(models, cfg.sizes, cfg.batches)
    sec_per_gmac: dict[str, float] = {}
    out = []
    n_min = cfg.policy.warmup + cfg.policy.min_runs
    for i, (model, size, batch) in enumerate(cases):
        macs = model.macs(size, batch)
        gmac = macs / 1e9 if macs else (size / 256) ** 2 * batch * 10.0
        case = {
            "model": model.name,
            "size": size,
            "batch": batch,
            "gmac_per_inference": macs / 1e9,
            "results": {},
        }
        out.append(case)
        remaining = cfg.budget_s - (time.perf_counter() - start)
        cap = min(cfg.max_case_s, remaining)
        fair = remaining / (len(cases) - i)
        backends = build_backends(
            model.fp32,
            model.int8,
            model.make_net,
            torch_comparable=model.torch_same_weights,
            names=cfg.backends,
            threads=cfg.threads,
            max_side=max(cfg.sizes),
        )
        runnable = [b for b in backends if b.make is not None]
        # Reference first, then the cheapest; drop what would not fit in the cap.
        runnable.sort(key=lambda b: (b.name != REFERENCE, predict_s(sec_per_gmac, b.name, gmac, n_min)))
        chosen, total = [], 0.0
        for b in runnable:
            cost = predict_s(sec_per_gmac, b.name, gmac, n_min)
            if total + cost <= cap or (not chosen and i == 0):
                chosen.append(b)
                total += cost
            else:
                case["results"][b.name] = {
                    "status": "skipped",
                    "reason": f"time budget (predicted {cost:.0f} s for "
                    f"{n_min} runs; {max(cap - total, 0):.0f} s left for this case)",
                }
        if not any(b.name == REFERENCE for b in chosen):
            ref = case["results"].get(REFERENCE, {}).get("reason", "time budget")
            case["skipped"] = f"{ref.replace('time budget (', f'time budget ({REFERENCE} ', 1)}"
            for b in chosen:
                case["results"][b.name] = {
                    "status": "skipped",
                    "reason": "time budget (reference does not fit)",
                }
            chosen = []
        if chosen:
            # Time for the measured rounds: the configured target, at most a fair share of what is left.
            target = max(cfg.min_case_s, min(cfg.policy.target_s, fair, cap) - total * cfg.policy.warmup / n_min)
            policy = replace(cfg.policy, target_s=target)
            log(f"[bench] {model.name} {size}x{size} batch {batch}: {', '.join(b.name for b in chosen)}")
            t0 = time.perf_counter()
            case["results"].update(run_case(chosen, make_feed(size, batch, cfg.photo_dir), policy, macs=macs, peaks=peaks))
            case["elapsed_s"] = time.perf_counter() - t0
            case["ratios"] = {key: pairwise(case["results"], slow, fast) for key, (slow, fast) in RATIOS.items()}
            for name, res in case["results"].items():
                if res.get("status") == "ok" and "median_ms" in res:
                    sec_per_gmac[name] = res["median_ms"] / 1e3 / gmac
        else:
            log(f"[bench] {model.name} {size}x{size} batch {batch}: skipped (time budget)")
        for b in backends:
            if b.make is None:
                case["results"][b.name] = {"status": "unavailable", "reason": b.unavailable}
    return out
