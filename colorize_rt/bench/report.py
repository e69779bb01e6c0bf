"""Reports: the JSON record (every figure), a Markdown summary and a PNG chart, written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..core.atomic import atomic_path, atomic_write_text
from ..core.lazy import require
from .compare import pairwise
from .runners import REFERENCE
from .stats import format_ratio

TARGETS = {  # the goals for the shipped model; reported, never asserted
    "int8_vs_torch_fp32": 3.0,
    "int8_vs_opencv_dnn": 4.0,
    "int8_fraction_of_int8_peak": 0.8,
    "auto_vs_ort_fp32": 2.0,  # issue 26: auto on the CPU, chosen by measurement
    "auto_vs_torch_fp32": 3.0,
    "auto_vs_opencv_dnn": 2.0,
}
AUTO_SLACK = 1.05  # issue 26: auto never more than 5 % slower than the fastest backend that ran


def auto_vs_fastest(res: dict) -> dict | None:
    """Returns: auto's median over the fastest other CPU backend's median in one case (``{"ratio", "fastest"}``),
    or None where auto did not run.

    Args:
        res: one case's ``{backend: result}``.
    """
    ok = {k: v["median_ms"] for k, v in res.items() if v.get("status") == "ok" and "median_ms" in v}
    ok = {k: ms for k, ms in ok.items() if res[k].get("device", "cpu") == "cpu"}
    if "auto" not in ok or len(ok) < 2:
        return None
    fastest = min((k for k in ok if k != "auto"), key=ok.get)
    return {"ratio": ok["auto"] / ok[fastest], "fastest": fastest}


def headline(
    cases: list[dict],
    prefer: tuple[str, ...] = ("default", "mobile", "papernet"),
    size: int = 256,
    batch: int = 1,
) -> dict:
    """The issue's three target figures on the preferred model's (size, batch) case, with spreads."""
    by = {(c["model"], c["size"], c["batch"]): c for c in cases}
    for model in prefer:
        case = by.get((model, size, batch))
        if not case or case["results"].get("ort-int8", {}).get("status") != "ok":
            continue
        res = case["results"]
        int8 = res["ort-int8"]
        return {
            "model": model,
            "size": size,
            "batch": batch,
            "int8_vs_torch_fp32": pairwise(res, "torch-fp32", "ort-int8"),
            "int8_vs_opencv_dnn": pairwise(res, "opencv-dnn", "ort-int8"),
            "int8_vs_ort_fp32": int8.get("speedup_vs_ort_fp32"),
            "int8_fraction_of_int8_peak": int8.get("fraction_of_peak"),
            "int8_agreement_vs_ort_fp32": int8.get("agreement_vs_ort_fp32"),
            "auto_vs_ort_fp32": pairwise(res, "ort-fp32", "auto"),
            "auto_vs_torch_fp32": pairwise(res, "torch-fp32", "auto"),
            "auto_vs_opencv_dnn": pairwise(res, "opencv-dnn", "auto"),
            "auto_vs_fastest": auto_vs_fastest(res),
            "targets": TARGETS,
        }
    return {}


def _auto_headline(h: dict) -> list[str]:
    """Returns: the headline rows of issue 26's goals for ``auto`` (none where auto did not run)."""
    lines = []
    for key, label in (
        ("auto_vs_ort_fp32", "`auto` speed-up over ONNX Runtime fp32"),
        ("auto_vs_torch_fp32", "`auto` speed-up over PyTorch eager fp32"),
        ("auto_vs_opencv_dnn", "`auto` speed-up over OpenCV dnn"),
    ):
        if h.get(key):
            r = h[key]
            lines.append(f"| {label} | {format_ratio(r)} | ≥ {TARGETS[key]:.0f}× | {_met(r['median'], TARGETS[key])} |")
    fastest = h.get("auto_vs_fastest")
    if fastest:
        lines.append(
            f"| `auto` median / fastest other backend's ({fastest['fastest']}) | {fastest['ratio']:.2f} "
            f"| ≤ {AUTO_SLACK:.2f} | {'yes' if fastest['ratio'] <= AUTO_SLACK else 'no'} |"
        )
    return lines


def write_json(record: dict, path: Path) -> Path:
    return atomic_write_text(path, json.dumps(record, indent=1, sort_keys=False, default=str) + "\n")


def _f(v, fmt="{:.1f}", none="–") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    return fmt.format(v)


def _met(value, target) -> str:
    if value is None:
        return "n/a"
    return "yes" if value >= target else "no"


def markdown(record: dict) -> str:
    m = record["machine"]
    v = m["versions"]
    peaks = record.get("peaks", {})
    lines = [
        f"# colorize-rt benchmark — `{m['tag']}`",
        "",
        f"{record['created']} · mode `{record['mode']}` · {record['elapsed_s']:.0f} s · `{record['command']}`",
        "",
        f"- CPU: {m['cpu']} ({m['arch']}, {m['cores']} cores visible, {m['memory_gb']} GB), flags: "
        f"{', '.join(m['cpu_flags']) or '–'}; GPUs: {', '.join(m['gpus']) or 'none'}",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- Measured GEMM peak: fp32 {_f(peaks.get('fp32_gflops'), '{:.0f}')} GFLOP/s, "
        f"int8 {_f(peaks.get('int8_gops'), '{:.0f}')} GOP/s ({peaks.get('method', '')})",
        f"- Inputs: {record.get('inputs', '')}; threads: {record['config'].get('threads') or 'all cores'}; "
        "runs interleaved per case (A B C, B C A, ...)",
        "",
    ]
    h = record.get("headline") or {}
    if h:
        lines += [
            f"## Headline ({h['model']}, {h['size']}², batch {h['batch']})",
            "",
            "| figure | measured (median [p5–p95] of paired rounds) | target | met |",
            "|---|---|---|---|",
        ]
        for key, label in (
            ("int8_vs_torch_fp32", "INT8 speed-up over PyTorch eager fp32"),
            ("int8_vs_opencv_dnn", "INT8 speed-up over OpenCV dnn"),
        ):
            r = h.get(key)
            lines.append(f"| {label} | {format_ratio(r)} | ≥ {TARGETS[key]:.0f}× | {_met(r and r['median'], TARGETS[key])} |")
        frac = h.get("int8_fraction_of_int8_peak")
        lines.append(
            f"| INT8 fraction of int8 GEMM peak | {_f(frac and frac * 100, '{:.1f} %')} | ≥ 80 % "
            f"| {_met(frac, TARGETS['int8_fraction_of_int8_peak'])} |"
        )
        lines.append(f"| INT8 speed-up over ONNX Runtime fp32 | {format_ratio(h.get('int8_vs_ort_fp32'))} | – | – |")
        lines += _auto_headline(h)
        agree = h.get("int8_agreement_vs_ort_fp32") or {}
        if "mean_abs_ab" in agree and h["model"] == "default":  # random-weight models output near-gray
            lines.append(
                f"| INT8 output vs fp32: mean / max abs ab difference | {agree['mean_abs_ab']:.2f} / "
                f"{agree['max_abs_ab']:.1f} | – | – |"
            )
        gate = next((m.get("int8_gate") for m in record.get("models", []) if m["name"] == h["model"]), None)
        if gate and "auc_rebal_int8" in gate:
            lines.append(
                f"| INT8 accuracy (rebalanced AuC, {gate.get('gate_images', '?')} held-out images) "
                f"| fp32 {gate['auc_rebal_fp32']} → int8 {gate['auc_rebal_int8']} | within the calibration "
                "gate | yes (colorize-calibrate writes the INT8 model only when the gate passes) |"
            )
        lines.append("")
    for name, why in record.get("missing_models", {}).items():
        lines.append(f"- model `{name}` not benchmarked: {why}")
    for mod in record.get("models", []):
        lines.append(
            f"- model `{mod['name']}`: {mod['variant']} {json.dumps(mod['variant_args'])}, "
            f"{mod['gmac_256']:.2f} GMAC per 256² image; {'; '.join(mod['notes'])}"
        )
    unavailable = {
        n: r.get("reason", "")
        for c in record.get("cases", [])
        for n, r in c["results"].items()
        if r.get("status") == "unavailable"
    }
    if unavailable:
        lines.append("- not available on this machine: " + "; ".join(f"{n} ({why})" for n, why in unavailable.items()))
    lines += [
        "",
        "## Latency and throughput",
        "",
        "Times in ms per inference (a batch). CV flag ⚠ when > 5 %. Speed-up = ORT fp32 time / this time per "
        "round, median [p5–p95]. RSS = process peak while that backend ran (Δ = growth during the call). "
        "Δab = mean abs difference of its output from ORT fp32 (same or quantised-from weights only).",
        "",
        "| model | size | batch | backend | runs | mean | median | p90 | p95 | p99 | min | max | CV | img/s "
        "| GFLOP/s | % peak | peak RSS MB (Δ) | speed-up vs ORT fp32 | Δab |",
        "|" + "---|" * 19,
    ]
    for case in record.get("cases", []):
        key = f"| {case['model']} | {case['size']} | {case['batch']} "
        if case.get("skipped"):
            lines.append(key + f"| all | skipped: {case['skipped']} |" + " |" * 14)
            continue
        for name, res in case["results"].items():
            st = res.get("status")
            if st != "ok":
                reason = res.get("error") or res.get("reason", "")
                if st == "unavailable":
                    continue  # listed once, above the table
                lines.append(key + f"| {name} | {st}: {reason.splitlines()[0][:160] if reason else ''} |" + " |" * 14)
                continue
            agree = res.get("agreement_vs_ort_fp32", {})
            lines.append(
                key + f"| {name} | {res['runs']} | {res['mean_ms']:.1f} | {res['median_ms']:.1f} "
                f"| {res['p90_ms']:.1f} "
                f"| {res['p95_ms']:.1f} | {res['p99_ms']:.1f} | {res['min_ms']:.1f} | {res['max_ms']:.1f} "
                f"| {res['cv'] * 100:.1f} %{' ⚠' if res['cv_flag'] else ''} | {res['throughput_img_s']:.2f} "
                f"| {_f(res.get('gflops'), '{:.0f}')} "
                f"| {_f(res.get('fraction_of_peak') and res['fraction_of_peak'] * 100)} "
                f"| {_f(res.get('peak_rss_mb'), '{:.0f}')} ({_f(res.get('infer_rss_delta_mb'), '{:+.0f}')}) "
                f"| {format_ratio(res.get('speedup_vs_ort_fp32')) if name != REFERENCE else '1 (reference)'} "
                f"| {_f(agree.get('mean_abs_ab'), '{:.2f}')} |"
            )
    lines += _ratios_md(record.get("cases", []))
    lines += _e2e_md(record.get("end_to_end")) + _tiled_md(record.get("tiled"))
    if "full_resolution" in record:
        from .fullres import fullres_markdown

        lines += fullres_markdown(record["full_resolution"])
    lines += _video_md(record.get("video"))
    lines += _hints_md(record.get("hints"))
    if "batch_engines" in record:  # colorize-rt batch: local vs Ray (bench/batch_engines.py)
        from .batch_engines import batch_engines_markdown

        lines += batch_engines_markdown(record["batch_engines"])
    return "\n".join(lines) + "\n"


def _ratios_md(cases: list[dict]) -> list[str]:
    rows = [c for c in cases if any(c.get("ratios", {}).values())]
    if not rows:
        return []
    keys = list(dict.fromkeys(k for c in rows for k in c["ratios"]))
    lines = [
        "",
        "## Speed ratios per case",
        "",
        "Per interleaved round, the slower backend's time over the faster's: median [p5–p95].",
        "",
        "| model | size | batch | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
        "|" + "---|" * (3 + len(keys)),
    ]
    for c in rows:
        cells = " | ".join(format_ratio(c["ratios"].get(k)) for k in keys)
        lines.append(f"| {c['model']} | {c['size']} | {c['batch']} | {cells} |")
    return lines


def _e2e_md(e2e: dict | None) -> list[str]:
    if not e2e:
        return []
    lines = ["", "## End to end: CLI on a folder (fit mode)", ""]
    if e2e.get("status") != "ok":
        return lines + [f"{e2e.get('status')}: {e2e.get('reason') or e2e.get('error')}"]
    lines += [
        f"{e2e['images']} photos from `{e2e['folder']}`, model `{e2e['model']}` on {e2e['backend']}: "
        f"**{e2e['images_per_s']:.2f} images/s** ({e2e['wall_s']:.2f} s), model busy "
        f"**{e2e['model_busy_fraction'] * 100:.0f} %** of the wall time (target ≥ 90 %), peak RSS "
        f"{e2e['peak_rss_mb']:.0f} MB.",
        "",
    ]
    return lines + _per_photo_md(e2e.get("per_photo"))


def _per_photo_md(res: dict | None) -> list[str]:
    from .e2e import folder_vs_network_markdown  # folder per photo vs the network alone (issue 26)

    return folder_vs_network_markdown(res)


def _hints_md(res: dict | None) -> list[str]:
    """The hints phase's section (one hint / palette update of a 1 MP photo, bench/hints.py)."""
    from .hints import hints_markdown

    return hints_markdown(res)


def _video_md(video: dict | None) -> list[str]:
    """The video phase's section (colorize-rt clip.mp4, bench/video.py)."""
    if not video:
        return []
    from .video import video_markdown

    return video_markdown(video)


def _tiled_md(tiled: dict | None) -> list[str]:
    if not tiled:
        return []
    lines = ["", "## Tiled mode", ""]
    if tiled.get("status") not in (None, "ok"):
        return lines + [f"{tiled.get('status')}: {tiled.get('reason') or tiled.get('error')}"]
    lines += [
        f"Model `{tiled.get('model')}`, tile {tiled.get('tile')}, overlap {tiled.get('overlap')}; "
        "each size in a "
        "fresh process (peak RSS is that process's high-water mark).",
        "",
        "| image | Mpixel | time s | s per Mpixel | peak RSS MB | status |",
        "|---|---|---|---|---|---|",
    ]
    for r in tiled.get("sizes", []):
        if r.get("status") == "ok":
            lines.append(
                f"| {r['size']}² | {r['mpixel']:.1f} | {r['seconds']:.2f} | {r['s_per_mpixel']:.3f} "
                f"| {r['peak_rss_mb']:.0f} | ok |"
            )
        else:
            lines.append(
                f"| {r['size']}² | {r['size'] ** 2 / 1e6:.1f} | – | – | – | {r.get('status')}: "
                f"{r.get('reason') or r.get('error', '')} |"
            )
    if tiled.get("linearity"):
        lines += ["", tiled["linearity"]]
    return lines


def chart(record: dict, path: Path) -> Path:
    """Throughput (img/s, log scale) per backend for every measured case, one panel per model; the whisker
    spans the images/s at the p95 and the best (min) latency."""
    mpl = require("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    cases = [c for c in record.get("cases", []) if any(r.get("status") == "ok" for r in c["results"].values())]
    models = list(dict.fromkeys(c["model"] for c in cases)) or ["(no cases)"]
    backends = list(dict.fromkeys(n for c in cases for n, r in c["results"].items() if r.get("status") == "ok"))
    fig, axes = plt.subplots(len(models), 1, figsize=(11, 3.2 * len(models)), squeeze=False)
    width = 0.8 / max(len(backends), 1)
    for ax, model in zip(axes[:, 0], models, strict=True):
        mc = [c for c in cases if c["model"] == model]
        for j, name in enumerate(backends):
            xs, ys, lo, hi = [], [], [], []
            for i, c in enumerate(mc):
                r = c["results"].get(name, {})
                if r.get("status") == "ok":
                    xs.append(i + (j - (len(backends) - 1) / 2) * width)
                    ys.append(r["throughput_img_s"])
                    lo.append(max(ys[-1] - c["batch"] * 1e3 / r["p95_ms"], 0))
                    hi.append(max(c["batch"] * 1e3 / r["min_ms"] - ys[-1], 0))
            ax.bar(
                xs,
                ys,
                width,
                yerr=[lo, hi] if xs else None,
                capsize=2,
                color=f"C{j % 10}",
                label=name if ax is axes[0, 0] else None,
            )
        ax.set_xticks(range(len(mc)), [f"{c['size']}² ×{c['batch']}" for c in mc])
        ax.set_yscale("log")
        ax.set_ylabel("images / s")
        ax.set_title(f"{model} — {record['machine']['tag']}")
        ax.grid(axis="y", alpha=0.3)
    if backends:
        fig.legend(loc="lower center", ncol=min(len(backends), 6), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 if backends else 0, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def write_reports(record: dict, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "json": write_json(record, out_dir / "bench.json"),
        "markdown": atomic_write_text(out_dir / "bench.md", markdown(record)),
        "png": chart(record, out_dir / "bench.png"),
    }
