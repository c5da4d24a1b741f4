"""Results: the table, CSV/JSON files and the plot."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spatten_dv.models.accuracy.configs import METHODS


@dataclass
class ConfigResult:
    name: str
    method: str
    description: str
    perplexity: float
    nll: float
    scored_tokens: int
    keys_pct: float
    values_pct: float
    lsb_refetch_pct: float  # of the jobs run
    heads_run_pct: float
    kv_bytes_per_token: float  # payload bits / 8
    dense_bytes_per_token: float  # 12-bit K and V, all tokens
    bus_bytes_per_token: float  # padded planes (DRAM strides)
    dense_bus_bytes_per_token: float
    seconds: float
    config: dict = field(default_factory=dict)

    @property
    def reduction(self) -> float:
        return self.dense_bytes_per_token / self.kv_bytes_per_token

    @property
    def bus_reduction(self) -> float:
        return self.dense_bus_bytes_per_token / self.bus_bytes_per_token


TABLE_HEAD = ("| config | perplexity | vs dense | keys % | values % | LSB refetch % | "
              "K/V MB/token | reduction | bus MB/token | bus reduction | time s |\n"
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def table(results: Sequence[ConfigResult]) -> str:
    dense = next((r for r in results if r.method == "dense"), None)
    lines = [TABLE_HEAD]
    for r in results:
        delta = (f"{r.perplexity - dense.perplexity:+.2f} "
                 f"({100 * (r.perplexity / dense.perplexity - 1):+.1f}%)" if dense else "-")
        lines.append(
            f"| {r.name} | {r.perplexity:.3f} | {delta} | {r.keys_pct:.1f} | {r.values_pct:.1f}"
            f" | {r.lsb_refetch_pct:.1f} | {r.kv_bytes_per_token / 1e6:.3f}"
            f" | {r.reduction:.1f}x | {r.bus_bytes_per_token / 1e6:.3f}"
            f" | {r.bus_reduction:.1f}x | {r.seconds:.0f} |")
    return "\n".join(lines)


CSV_FIELDS = ("name", "method", "perplexity", "nll", "scored_tokens", "keys_pct", "values_pct",
              "lsb_refetch_pct", "heads_run_pct", "kv_bytes_per_token", "dense_bytes_per_token",
              "reduction", "bus_bytes_per_token", "dense_bus_bytes_per_token", "bus_reduction",
              "seconds", "description")


def write_results(out: Path, results: Sequence[ConfigResult], meta: dict) -> None:
    """results.json, results.csv and table.md (rewritten after every config)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in results:
        d = asdict(r)
        d["reduction"], d["bus_reduction"] = r.reduction, r.bus_reduction
        rows.append(d)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps({"meta": meta, "results": rows}, indent=1) + "\n")
    tmp.replace(out / "results.json")
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "table.md").write_text(table(results) + "\n")


def load_results(path: Path) -> tuple[dict, list[ConfigResult]]:
    """(meta, results) of a results.json written by write_results."""
    data = json.loads(Path(path).read_text())
    names = set(ConfigResult.__dataclass_fields__)
    return data["meta"], [ConfigResult(**{k: v for k, v in r.items() if k in names})
                          for r in data["results"]]


def plot(results: Sequence[ConfigResult], path: Path, title: str) -> None:
    """Perplexity vs K/V bytes fetched per token (payload), log-log, one style per method.

    Points of a method are joined in byte order (SpAtten: only the configs with a recent
    window, the plain-spec variants stand alone).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    styles = {"dense": ("k", "*"), "spatten": ("tab:blue", "o"), "h2o": ("tab:orange", "s"),
              "streaming": ("tab:green", "^")}
    labels = {"dense": "dense (12-bit K/V)", "spatten": "SpAtten", "h2o": "H2O",
              "streaming": "StreamingLLM"}
    fig, ax = plt.subplots(figsize=(8, 5))
    for method in METHODS:
        pts = sorted((r for r in results if r.method == method),
                     key=lambda r: r.kv_bytes_per_token)
        if not pts:
            continue
        color, marker = styles[method]
        line = [r for r in pts if method != "spatten" or r.config.get("recent", 0) > 0]
        if len(line) > 1:
            ax.plot([r.kv_bytes_per_token / 1e6 for r in line], [r.perplexity for r in line],
                    color=color, linewidth=1, alpha=0.6)
        ax.scatter([r.kv_bytes_per_token / 1e6 for r in pts], [r.perplexity for r in pts],
                   marker=marker, color=color, label=labels[method], s=60 if marker == "*"
                   else 30, zorder=3)
        for r in pts:
            ax.annotate(r.name, (r.kv_bytes_per_token / 1e6, r.perplexity), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    dense = next((r for r in results if r.method == "dense"), None)
    if dense:
        ax.axhline(dense.perplexity, color="k", linewidth=0.6, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
    ax.tick_params(which="both", labelsize=7)
    ax.set_xlabel("K/V bytes fetched per token, MB (payload; dense = 12-bit K and V)")
    ax.set_ylabel("perplexity")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_title(meta: dict) -> str:
    model = str(meta.get("model", "model")).split(" (")[0].split("/")[-1]
    return (f"{model}, {meta.get('scored_tokens', '?')} scored tokens of "
            f"{meta.get('text', 'text')}")
