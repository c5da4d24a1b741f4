"""Summary over windows (perplexity with confidence intervals, K/V bytes), the results JSON
(docs/accuracy_results.json schema), the markdown table and the plot."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from spatten_dv.models.accuracy.configs import StudyConfig

CURVE = ("spatten-x0.5", "spatten-per8", "spatten-x2", "spatten-x4")  # joined in the plot


def t_quantile(df: int, z: float = 1.959964) -> float:
    """Student t 97.5 % quantile (Cornish-Fisher expansion; < 0.2 % off for df >= 3)."""
    if df < 1:
        return math.inf
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def _interval(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half width of the 95 % t interval) of per-window values."""
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, math.inf
    return m, t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def summarize(configs: Sequence[StudyConfig], windows, meta: dict) -> dict:
    """The study's summary: {"meta", "configs": [...]} (one entry per config, study order)."""
    by_cfg: dict[str, list] = {}
    for r in windows:
        by_cfg.setdefault(r.config, []).append(r)
    dense = next((c.name for c in configs if c.method == "dense"), None)
    dense_nll = {r.window: r.nll / r.tokens for r in by_cfg.get(dense, [])}
    rows = []
    for c in configs:
        rs = by_cfg.get(c.name, [])
        if not rs:
            continue
        per = [r.nll / r.tokens for r in rs]
        m, h = _interval(per)
        tokens = sum(r.tokens for r in rs)
        bits = sum(r.kv_bits for r in rs)
        dense_bits = sum(r.dense_bits for r in rs)
        bus = sum(r.bus_bytes for r in rs)
        dense_bus = sum(r.dense_bus_bytes for r in rs)
        row = {"name": c.name, "method": c.method, "ppl": math.exp(m),
               "ppl_ci": [math.exp(m - h), math.exp(m + h)] if math.isfinite(h) else None,
               "kv_bytes_per_token": bits / 8 / tokens,
               "kv_bytes_reduction": dense_bits / bits if bits else math.inf,
               "bus_bytes_per_token": bus / tokens,
               "bus_bytes_reduction": dense_bus / bus if bus else math.inf,
               "dense_kv_bytes_per_token": dense_bits / 8 / tokens,
               "lsb_refetch_pct": 100 * sum(r.lsb_rows for r in rs) / max(1, sum(r.rows
                                                                                  for r in rs)),
               "windows": len(rs), "scored_tokens": tokens, "description": c.describe(),
               "note": c.note, "config": {k: v for k, v in c.__dict__.items()
                                          if k not in ("name", "method", "note")}}
        if dense_nll and all(r.window in dense_nll for r in rs):
            diff = [r.nll / r.tokens - dense_nll[r.window] for r in rs]
            dm, dh = _interval(diff)
            row["vs_dense_pct"] = 100 * (math.exp(dm) - 1)
            row["vs_dense_pct_ci"] = ([100 * (math.exp(dm - dh) - 1),
                                       100 * (math.exp(dm + dh) - 1)]
                                      if math.isfinite(dh) else None)
        rows.append(row)
    return {"meta": meta, "configs": rows}


def _ci(x) -> str:
    return f"[{x[0]:.3f}, {x[1]:.3f}]" if x else "-"


TABLE_HEAD = ("| config | method | perplexity [95 % CI] | vs dense % [95 % CI, paired] | "
              "K/V KB/token | reduction | padded reduction | LSB refetch % | what |\n"
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")


def table(summary: dict) -> str:
    lines = [TABLE_HEAD]
    for r in summary["configs"]:
        if "vs_dense_pct" in r:
            ci = r.get("vs_dense_pct_ci")
            vs = f"{r['vs_dense_pct']:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")
        else:
            vs = "-"
        lines.append(
            f"| {r['name']} | {r['method']} | {r['ppl']:.3f} {_ci(r['ppl_ci'])} | {vs} | "
            f"{r['kv_bytes_per_token'] / 1e3:.0f} | {r['kv_bytes_reduction']:.1f}x | "
            f"{r['bus_bytes_reduction']:.1f}x | {r['lsb_refetch_pct']:.1f} | "
            f"{r['description']} |")
    return "\n".join(lines)


def write_outputs(out: Path, summary: dict) -> None:
    """results.json (the docs/accuracy_results.json schema), table.md and accuracy.png."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(out / "results.json")
    (out / "table.md").write_text(table(summary) + "\n")
    plot(summary, out / "accuracy.png")


def plot(summary: dict, path: Path) -> None:
    """Perplexity (95 % CI bars) vs K/V bytes per decoded token, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    rows = summary["configs"]
    styles = {"dense": ("k", "*", "dense (12-bit K/V)"),
              "spatten": ("tab:blue", "o", "SpAtten (per8 shape, scaled)"),
              "h2o": ("tab:orange", "s", "H2O (equal bytes)"),
              "streaming": ("tab:green", "^", "StreamingLLM (equal bytes)")}
    fig, ax = plt.subplots(figsize=(8.5, 5.5))

    def draw(pts, color, marker, label, line=True):
        pts = sorted(pts, key=lambda r: r["kv_bytes_per_token"])
        if not pts:
            return
        x = [r["kv_bytes_per_token"] / 1e6 for r in pts]
        y = [r["ppl"] for r in pts]
        err = [[r["ppl"] - (r["ppl_ci"] or [r["ppl"]] * 2)[0] for r in pts],
               [(r["ppl_ci"] or [r["ppl"]] * 2)[1] - r["ppl"] for r in pts]]
        ax.errorbar(x, y, yerr=err, color=color, marker=marker, label=label, capsize=3,
                    linewidth=1 if line else 0, markersize=8 if marker == "*" else 5,
                    elinewidth=0.8, alpha=0.9)

    for method, (color, marker, label) in styles.items():
        pts = [r for r in rows if r["method"] == method
               and (method != "spatten" or r["name"] in CURVE)]
        draw(pts, color, marker, label)
    other = [r for r in rows if r["method"] == "spatten" and r["name"] not in CURVE]
    draw(other, "tab:gray", "x", "SpAtten variants / ablations", line=False)
    for r in rows:
        if r["method"] == "spatten":
            ax.annotate(r["name"], (r["kv_bytes_per_token"] / 1e6, r["ppl"]), fontsize=6,
                        xytext=(4, 3), textcoords="offset points")
    dense = next((r for r in rows if r["method"] == "dense"), None)
    if dense:
        ax.axhline(dense["ppl"], color="k", linewidth=0.6, linestyle=":")
        ax.axhline(dense["ppl"] * 1.01, color="k", linewidth=0.5, linestyle="--", alpha=0.5,
                   label="dense + 1 %")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
    ax.tick_params(which="both", labelsize=7)
    ax.set_xlabel("K/V bytes fetched per decoded token, MB (payload bits / 8; dense = 12-bit)")
    ax.set_ylabel("perplexity of the decoded tokens")
    m = summary.get("meta", {})
    model = str(m.get("model", "model")).split(" (")[0].split("/")[-1]
    ax.set_title(f"{model}: {m.get('windows_done', m.get('windows', '?'))} windows of "
                 f"{m.get('prompt_tokens', '?')} prompt + {m.get('decode_tokens', '?')} "
                 f"decoded tokens ({m.get('text', 'text')})", fontsize=9)
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
